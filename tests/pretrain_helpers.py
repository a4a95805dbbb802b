"""Tiny corpora, tokenizers and settings shared by the pretraining tests (no downloads)."""

from __future__ import annotations

import csv
import json
import random
import struct
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORDS = [f"w{i}" for i in range(45)]  # ids 3..47 after <unk>, <s>, </s>
BLOCK = 32
# n_layer 2, n_embd 32: trains in milliseconds per step on a CPU.
TINY_MODEL = {"n_layer": 2, "n_embd": 32, "n_head": 4, "n_query_groups": 2, "intermediate_size": 64}


def write_chunk(path: Path, tokens) -> None:
    """A packed chunk written from SPEC.md §4 directly: magic, version 1, dtype code 8 (uint16), size."""
    tokens = np.asarray(tokens, dtype=np.uint16)
    header = b"LITPKDS" + struct.pack("<Q", 1) + struct.pack("<B", 8) + struct.pack("<Q", tokens.size)
    assert len(header) == 24
    path.write_bytes(header + tokens.tobytes())


def make_tokenizer(folder: Path, eos: bool = True) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "bos_token": "<s>"}
    if eos:
        config["eos_token"] = "</s>"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def _documents(rng: random.Random, n_tokens: int) -> list[int]:
    """Documents of a learnable pattern (each word mostly determines the next), EOS-separated."""
    out: list[int] = []
    while len(out) < n_tokens:
        token = rng.randrange(3, 48)
        for _ in range(rng.randrange(20, 80)):
            out.append(token)
            token = (token * 7 + 5) % 45 + 3 if rng.random() > 0.1 else rng.randrange(3, 48)
        out.append(2)
    return out[:n_tokens]


def make_corpus(folder: Path, train_files: int = 4, blocks_per_file: int = 16, val_blocks: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    chunk = (BLOCK + 1) * blocks_per_file
    for i in range(train_files):
        write_chunk(folder / f"c4_{i:010d}.bin", _documents(rng, chunk))
    write_chunk(folder / "validation_0000000000.bin", _documents(rng, (BLOCK + 1) * val_blocks))
    return folder


def prepared_data(root: Path) -> tuple[Path, Path]:
    """(corpus, tokenizer) under `root`, the corpus with the manifest prepare_c4.py writes for that
    tokenizer (the run must accept it)."""
    from lit_gpt.prepare.pipeline import tokenizer_fingerprint
    from lit_gpt.tokenizer import load_tokenizer

    corpus, tokenizer = make_corpus(root / "corpus"), make_tokenizer(root / "tokenizer")
    fingerprint = tokenizer_fingerprint(load_tokenizer(tokenizer))
    (corpus / "manifest.json").write_text(json.dumps({"tokenizer": {"fingerprint": fingerprint, "vocab_size": 49}}))
    return corpus, tokenizer


def tiny_settings(corpus: Path, tokenizer: Path, out_dir: Path, **changes) -> dict:
    settings = dict(
        model_name="micro_LLaMA",
        model_overrides=dict(TINY_MODEL),
        vocab_from_tokenizer=True,
        block_size=BLOCK,
        train_data_dir=str(corpus),
        tokenizer_dir=str(tokenizer),
        out_dir=str(out_dir),
        devices=1,
        accelerator="cpu",
        micro_batch_size=4,
        global_batch_size=8,
        max_steps=12,
        learning_rate=1e-2,
        min_lr=1e-3,
        warmup_steps=2,
        log_interval=1,
        eval_interval=4,
        eval_iters=2,
        save_interval=4,
        keep_last=2,
        seed=1234,
    )
    settings.update(changes)
    return settings


def to_argv(settings: dict) -> list[str]:
    argv = []
    for key, value in settings.items():
        argv += [f"--{key}", json.dumps(value) if isinstance(value, dict) else str(value)]
    return argv


def read_metrics(out_dir: Path) -> list[dict[str, str]]:
    with open(Path(out_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def train_losses(out_dir: Path) -> dict[int, str]:
    return {int(r["step"]): r["loss"] for r in read_metrics(out_dir) if r["loss"]}


def val_losses(out_dir: Path) -> dict[int, str]:
    return {int(r["step"]): r["val_loss"] for r in read_metrics(out_dir) if r["val_loss"]}
