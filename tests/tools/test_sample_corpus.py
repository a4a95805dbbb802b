"""The embedded default: the committed C4-shaped sample and its tokenizer, and their generator."""

import gzip
import json
import re
from collections import defaultdict
from pathlib import Path


from tools.sample_corpus import generate_documents, make_sample_corpus, texts_from_json_files, train_bpe_tokenizer
from lit_gpt.tokenizer import MASK_TOKEN, load_tokenizer, tokenizer_info

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
TOKENIZER = REPO / "data" / "tokenizer"
SAMPLE_FILES = ["c4-train.00000-of-00002.json.gz", "c4-train.00001-of-00002.json.gz",
                "c4-validation.00000-of-00001.json.gz"]


def test_committed_sample_is_c4_shaped_and_small():
    assert sorted(p.name for p in SAMPLE.iterdir()) == SAMPLE_FILES
    total = sum(p.stat().st_size for p in SAMPLE.iterdir()) + sum(p.stat().st_size for p in TOKENIZER.iterdir())
    assert total < 3_000_000
    with gzip.open(SAMPLE / SAMPLE_FILES[2], "rt") as f:
        records = [json.loads(line) for line in f]
    assert len(records) > 100
    assert all(set(r) == {"text", "timestamp", "url"} and isinstance(r["text"], str) for r in records)


def test_committed_sample_is_what_the_generator_makes(tmp_path):
    """Regenerating with the defaults reproduces the committed bytes (one small file is enough)."""
    make_sample_corpus(tmp_path)
    assert (tmp_path / SAMPLE_FILES[2]).read_bytes() == (SAMPLE / SAMPLE_FILES[2]).read_bytes()


def test_committed_tokenizer_follows_llama_conventions():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER))
    assert (tok.convert_tokens_to_ids("<unk>"), tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.bos_token == "<s>" and tok.eos_token == "</s>"
    assert len(tok) == 4096 and tok.convert_tokens_to_ids(MASK_TOKEN) == 4095
    info = tokenizer_info(load_tokenizer(TOKENIZER))
    assert info.mask_id == 4095 and info.vocab_size == 4096 and info.adds_bos
    text = "The capital of Veldoria is Marnet.\nThe pass key is 40213.  naïve ✓"
    ids = tok(text)["input_ids"]
    assert ids[0] == 1 and tok.decode(ids, skip_special_tokens=True) == text
    assert [tok.convert_ids_to_tokens(i) for i in tok("40213", add_special_tokens=False)["input_ids"]] == list("40213")


def test_facts_about_the_world_agree_across_documents():
    capitals = defaultdict(set)
    births = defaultdict(set)
    for text in generate_documents(seed=7, n_chars=300_000):
        for country, capital in re.findall(r"The capital of (\w+) is (\w+)\.", text):
            capitals[country].add(capital)
        for name, year in re.findall(r"(\w+ \w+) was born in the year (\d+)\.", text):
            births[name].add(year)
    assert len(capitals) > 20 and all(len(v) == 1 for v in capitals.values())
    assert len(births) > 20 and all(len(v) == 1 for v in births.values())


def test_in_context_facts_are_answerable_from_the_document():
    registers = [t for t in generate_documents(seed=3, n_chars=200_000) if t.startswith("Register of")]
    assert len(registers) > 20
    for text in registers:
        codes = dict(re.findall(r"The code of the (.+?) is (\d+)\.", text))
        questions = re.findall(r"What is the code of the (.+?)\? Answer: (\d+)\.", text)
        assert questions and all(codes[key] == value for key, value in questions)


def test_generation_is_deterministic():
    assert list(generate_documents(seed=5, n_chars=20_000)) == list(generate_documents(seed=5, n_chars=20_000))
    assert list(generate_documents(seed=5, n_chars=20_000)) != list(generate_documents(seed=6, n_chars=20_000))


def test_tokenizer_training_from_json_files(tmp_path):
    texts = list(texts_from_json_files([SAMPLE / SAMPLE_FILES[2]]))
    out = train_bpe_tokenizer(texts, tmp_path / "tok", vocab_size=512)
    tok = load_tokenizer(out)
    assert len(tok) == 512 and tok.convert_tokens_to_ids(MASK_TOKEN) == 511
    assert tok.decode(tok(texts[0])["input_ids"], skip_special_tokens=True) == texts[0]


def test_packaged_haystack_filler_is_what_the_generator_makes(tmp_path):
    """The NIAH filler shipped inside lit_gpt is the generator's output from the committed sample."""
    from importlib.resources import files

    from tools.sample_corpus import HAYSTACK_CHARS, make_haystack_filler

    packaged = files("lit_gpt.eval") / "haystack.jsonl.gz"
    assert len(packaged.read_bytes()) < 300_000
    make_haystack_filler(SAMPLE, tmp_path / "filler.jsonl.gz")
    regenerated = gzip.decompress((tmp_path / "filler.jsonl.gz").read_bytes())
    assert gzip.decompress(packaged.read_bytes()) == regenerated
    texts = [json.loads(line)["text"] for line in regenerated.splitlines()]
    train = [t.strip() for t in texts_from_json_files(sorted(SAMPLE.glob("c4-train.*")))]
    assert texts == train[: len(texts)]  # whole documents, in the sample's order, from its start
    assert sum(map(len, texts[:-1])) < HAYSTACK_CHARS <= sum(map(len, texts))
