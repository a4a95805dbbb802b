"""Text to hide needles in: a local corpus (plain text, JSON lines, C4 `json.gz`) or generated filler.

Without a corpus of the user's, needle-in-a-haystack reads the filler that ships inside the package
(`haystack.jsonl.gz`: 1M characters of the sample corpus's documents, made by
`tools.sample_corpus.make_haystack_filler`), so an installed package and a clone build the same
haystacks and the evaluation never needs the network.
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Iterator, Optional, Union

from lit_gpt.errors import UserError

# The filler of the passkey test (Landmark Attention, LongLoRA): repetitive, so only the passkey
# carries information.
PASSKEY_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "

CORPUS_SUFFIXES = (".txt", ".jsonl", ".json", ".jsonl.gz", ".json.gz")
PACKAGED_FILLER = "haystack.jsonl.gz"  # package data of lit_gpt.eval


@dataclass
class Corpus:
    """Documents to draw haystack text from; `source` says where they came from (for results.json)."""

    documents: list[str]
    source: str

    def text(self, rng: random.Random, n_chars: int) -> str:
        """At least `n_chars` characters of consecutive documents from a random start, cycling."""
        start = rng.randrange(len(self.documents))
        parts, size, i = [], 0, start
        while size < n_chars:
            doc = self.documents[i % len(self.documents)]
            parts.append(doc)
            size += len(doc) + 2
            i += 1
        return "\n\n".join(parts)


def _corpus_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(CORPUS_SUFFIXES))
        if not files:
            raise UserError(f"haystack folder {path} holds no {', '.join(CORPUS_SUFFIXES)} files")
        return files
    if not path.is_file():
        raise UserError(f"haystack file not found: {path}")
    if not path.name.endswith(CORPUS_SUFFIXES):
        raise UserError(f"haystack file {path} is not one of {', '.join(CORPUS_SUFFIXES)}")
    return [path]


def _read_documents(path: Path) -> Iterator[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            if path.name.endswith(".txt"):
                yield f.read()
                return
            first = f.read(1)
            f.seek(0)
            if path.name.endswith(".json") and first == "[":  # one JSON list instead of JSON lines
                records = enumerate(json.load(f), 1)
            else:
                records = ((n, json.loads(line)) for n, line in enumerate(f, 1) if line.strip())
            for n, record in records:
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise UserError(f"{path} record {n} has no 'text' string")
                yield record["text"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError, zlib.error) as err:  # a corrupt .gz too
        raise UserError(f"could not read haystack file {path}: {err}") from err


def take_documents(texts: Iterator[str], max_chars: int) -> list[str]:
    """The non-empty `texts`, stripped, up to the first that brings the total to `max_chars` characters."""
    documents, size = [], 0
    for text in texts:
        text = text.strip()
        if text:
            documents.append(text)
            size += len(text)
        if size >= max_chars:
            break
    return documents


def load_corpus(path: Union[str, Path], max_chars: int = 4_000_000) -> Corpus:
    path = Path(path).expanduser()
    documents = take_documents(chain.from_iterable(map(_read_documents, _corpus_files(path))), max_chars)
    if not documents:
        raise UserError(f"haystack {path} holds no text")
    return Corpus(documents, str(path))


def default_corpus(max_chars: int = 4_000_000) -> Corpus:
    """The filler shipped with the package; `source` names it the same way in every install."""
    from importlib.resources import as_file, files

    with as_file(files("lit_gpt.eval") / PACKAGED_FILLER) as path:
        corpus = load_corpus(path, max_chars)
    corpus.source = f"lit_gpt.eval/{PACKAGED_FILLER} (packaged sample text)"
    return corpus


def task_haystack(task: str, context_lengths: list[int], haystack_file: Optional[str] = None):
    """(corpus or None, a description for results.json) of a retrieval task's prompts: niah reads
    `haystack_file` or the packaged filler; passkey and kv build their own filler."""
    if task == "passkey":
        return None, "passkey filler (repeated sentences)"
    if task == "kv":
        return None, "random UUID key-value pairs"
    max_chars = max(4_000_000, 16 * max(context_lengths))
    corpus = load_corpus(haystack_file, max_chars) if haystack_file else default_corpus(max_chars)
    return corpus, corpus.source


@lru_cache(maxsize=None)
def word_list(kind: str) -> tuple[str, ...]:
    """Plain lowercase words from the wonderwords lists: 'noun', 'verb' or 'adjective'."""
    from importlib.resources import files

    text = (files("wonderwords.assets") / f"{kind}list.txt").read_text(encoding="utf-8")
    return tuple(w for w in text.split() if w.isalpha() and w.islower())


_SENTENCES = (
    "The {adj} {noun} can {verb} the {noun2}.",
    "A {noun} will {verb} every {adj} {noun2}.",
    "Nobody saw the {noun} {verb} the {adj} {noun2} yesterday.",
    "Some {adj} {noun} may {verb} a {noun2} before noon.",
)


def generated_text(rng: random.Random, n_chars: int) -> str:
    """Random grammatical sentences from the wonderwords lists (the niah filler of prompts built without a corpus)."""
    nouns, verbs, adjectives = word_list("noun"), word_list("verb"), word_list("adjective")
    parts, size = [], 0
    while size < n_chars:
        sentence = rng.choice(_SENTENCES).format(
            adj=rng.choice(adjectives), noun=rng.choice(nouns), noun2=rng.choice(nouns), verb=rng.choice(verbs)
        )
        parts.append(sentence)
        size += len(sentence) + 1
    return " ".join(parts)
