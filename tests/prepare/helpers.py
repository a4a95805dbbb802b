"""Texts, file writers and references shared by the tests of lit_gpt/prepare."""

import gzip
import json
import random
import re
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

DOCS = [
    "The capital of Veldoria is Marnet. Marnet was founded in 1432.",
    "",
    "  Leading spaces, tabs\tand\nnew lines.\n\n",
    "naïve café — ünïcödé ✓ 日本語",
    "A longer document. " * 40,
    "Short.",
    "A web page about BERT: the [MASK] token, and </s> or <s> written out, stay text.",
]


# Texts where tokenizers differ: whitespace runs, marks, digits, scripts, emoji, special-token strings.
TRICKY = [
    "", " ", "  ", "\n", "\t", "Hello world!", "  two leading spaces", "trailing spaces   ", "a  b   c    d     e",
    " " * 40 + "x" + " " * 41, "tabs\t\tand\t\t\tmore\t", "new\nlines\n\n\nand\r\nCRLF\r", " \n \t \u3000 \u00a0 ",
    "naïve café — ünïcödé, Ångström, ﬁ ligature, e\u0301 combining", "emoji 🦙🤖, ZWJ 👩‍👩‍👧, flags 🇩🇪, skin 👍🏽",
    "日本語のテキスト、中文字符 and 한국어; עברית and العربية", "Zalgo: Z̵̡̢a̷͎l̸g̶o̵", "\x00\x01\x0b\x0c\x7f\u2028\u2029\ufeff",
    "digits 3.14159 and 2,000,000 and 0x1F 007 1st 2nd", "12345678901234567890", "literal </s> and <s> and <unk>",
    "[MASK]", "a[MASK]b [MASK] [MASK][MASK] </s></s>", "<0x0A> <0xFF>", "▁", "▁▁▁", "▁already ▁marked▁▁ words ▁",
    " ▁ ▁▁ ▁", "supercalifragilisticexpialidocious" * 20, "x" * 5000, "ab" * 3000, "https://example.com/a?b=c&d=e#f",
    "def f(x):\n    return x ** 2  # comment\n", "{\"json\": [1, 2, 3]}", "C'est l'été. Don't, can't, won't.",
    "Mr. O'Neil paid $1,234.56 (approx. €1.100) on 2019-04-25T12:57:54Z.",
]


def write_lines(path: Path, lines, gz=None):
    data = "".join(line + "\n" for line in lines).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz if gz is not None else path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def c4_lines(texts):
    return [json.dumps({"text": t, "timestamp": "2019-04-25T12:57:54Z", "url": f"https://x.invalid/{i}"})
            for i, t in enumerate(texts)]


def read_chunk(path: Path):
    """Parses a chunk file by hand: (dtype code, tokens)."""
    raw = path.read_bytes()
    assert raw[:7] == b"LITPKDS" and struct.unpack("<Q", raw[7:15])[0] == 1
    code, size = raw[15], struct.unpack("<Q", raw[16:24])[0]
    tokens = np.frombuffer(raw[24:], dtype={8: "<u2", 4: "<i4"}[code])
    assert tokens.size == size
    return code, tokens


def run_in_process(args, capsys) -> tuple[int, str]:
    """(exit code, stderr) of `meap-prepare args` run in this process."""
    from lit_gpt.prepare.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    return exit_.value.code, capsys.readouterr().err


def quiet(*_):
    pass


def snapshot(dst: Path):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in dst.iterdir()}


def fuzz_texts(count: int, seed: int = 0) -> list[str]:
    """Random texts built from the pieces where tokenizers differ: spaces, marks, digits, scripts, specials."""
    import random

    pieces = [" ", "  ", "   ", "\n", "\t", "\r\n", "▁", "▁▁", "a", "e", "t", "th", "the", "The", "ing", "er", ".", ",",
              "'", "-", "0", "7", "42", "é", "ü", "ß", "日", "本", "🦙", "👩‍👩‍👧", "\u0301", "\u200b", "\x00", "</s>",
              "<s>", "[MASK]", "<unk>", "<0x0A>", "http://", "world", "hello", "Hello", "xyzzy", "\u3000"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(count)]


SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2}


def reference(sp, texts, parse_special_tokens=False):
    """BOS + the library's ids + EOS per document; with special tokens parsed, the text between
    them encoded on its own, as the Hugging Face LLaMA tokenizer splits at its added tokens."""
    ids = []
    for text in texts:
        ids.append(1)
        parts = re.split("(<unk>|<s>|</s>)", text) if parse_special_tokens else [text]
        for part in parts:
            if parse_special_tokens and part in SPECIALS:
                ids.append(SPECIALS[part])
            elif part:
                ids += sp.encode(part)
        ids.append(2)
    return ids


WHITESPACE_RUNS = ["a  b", "  two", "x   ", "\t\tindent\n\n\nlines", " \n \t \u3000 \u00a0 ", "a \n b\t c",
                   "word" + " " * 17 + "word", "\u2581 \u2581\u2581  x", "line one\r\n  line two\n\t\tend  ",
                   "Ünïcödé  日本語   😀 \t emoji  ", "   leading and trailing   "]


def natural_document(chars: int, seed: int = 0) -> str:
    """A long document of the repository's own prose with varied whitespace and some Unicode."""
    words = (REPO / "README.md").read_text().split() + ["naïve", "日本語", "🦙", "café", "—", "1,234.5"]
    rng = random.Random(seed)
    out, size = [], 0
    while size < chars:
        word = rng.choice(words) + rng.choice([" "] * 12 + ["  ", "\n", "\n\n", "\t", " \n", "   "])
        out.append(word)
        size += len(word)
    return "".join(out)
