"""manifest.json: a destination's settings and one entry per prepared source file. A run split over
machines writes one part file per shard, merged into manifest.json under a lock as each shard ends."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from filelock import FileLock

from lit_gpt.prepare.sources import MANIFEST, PrepareError

LOCK = f".{MANIFEST}.lock"
PART_GLOB = f".{MANIFEST[:-5]}.shard-*.json"

# Settings that must agree across runs writing into one destination.
MUST_MATCH = ("chunk_size", "dtype", "tokenizer.fingerprint", "tokenizer.vocab_size", "tokenizer.bos_id",
              "tokenizer.eos_id", "tokenizer.mask_id", "tokenizer.adds_bos", "encoding.backend",
              "encoding.bos_added", "encoding.parse_special_tokens")


def tokenizer_fingerprint(tokenizer) -> str:
    """Changes whenever any token's id does, so two runs can tell whether they used the same vocabulary."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()[:16]


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part, {}) if isinstance(d, dict) else {}
    return d if d != {} else None


def _read(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest.get("sources"), dict):
            raise ValueError("no 'sources' table")
    except (ValueError, OSError, AttributeError) as err:
        raise PrepareError(f"{path} is unreadable ({err}); move it away or choose another destination") from None
    return manifest


def load_manifest(destination: Path, name: str = MANIFEST) -> Optional[dict]:
    path = destination / name
    return _read(path) if path.exists() else None


def check_manifest(manifest: dict, settings: dict, destination: Path) -> None:
    if "encoding" not in manifest and isinstance(manifest.get("tokenizer"), dict):
        # Written before the encoding was recorded: every folder was encoded by the Hugging Face
        # tokenizer call, with BOS as it adds it and special tokens as text.
        manifest["encoding"] = {"backend": "tokenizers", "bos_added": manifest["tokenizer"].get("adds_bos"),
                                "parse_special_tokens": False}
    for key in MUST_MATCH:
        held, wanted = _get(manifest, key), _get(settings, key)
        if held == wanted:
            continue
        if key.startswith("tokenizer."):
            raise PrepareError(f"{destination} holds chunks made with another tokenizer ("
                               f"{_get(manifest, 'tokenizer.path')}, {key}={held!r}) than "
                               f"{_get(settings, 'tokenizer.path')} ({wanted!r}); use another --destination_path")
        raise PrepareError(f"{destination} holds chunks made with {key}={held!r}, this run has {wanted!r}; use another "
                           "--destination_path")


def write_manifest(destination: Path, manifest: dict, name: str = MANIFEST) -> None:
    """Replaces the file in one step, so a crash leaves the old or the new one, never half of one."""
    from lit_gpt.io.atomic import write_text

    manifest["sources"] = dict(sorted(manifest["sources"].items()))
    write_text(destination / name, json.dumps(manifest, indent=1) + "\n")


def done_chunk_prefixes(manifest: dict) -> set[str]:
    return {entry.get("chunk_prefix") for entry in manifest["sources"].values()}


def add_entry(manifest: dict, key: str, entry: dict) -> None:
    """Records a source; a key that another prefix's file already holds gets the prefix in front."""
    held = manifest["sources"].get(key)
    if held is not None and held.get("chunk_prefix") != entry["chunk_prefix"]:
        key = f"{entry['prefix']}/{key}"
    manifest["sources"][key] = entry


# --------------------------------------------------------------------------- runs split over machines


def part_name(shard_index: int, num_shards: int) -> str:
    return f".{MANIFEST[:-5]}.shard-{shard_index:05d}-of-{num_shards:05d}.json"


def merge_parts(destination: Path) -> tuple[int, int, int]:
    """Adds every shard's part file to manifest.json, removing them once every shard has finished all its
    files. Returns (sources added, shards finished, shards)."""
    with FileLock(destination / LOCK):
        parts = sorted(destination.glob(PART_GLOB))
        manifest = load_manifest(destination)
        added, finished, shards = 0, set(), 0
        for path in parts:
            part = _read(path)
            if manifest is None:
                manifest = {k: v for k, v in part.items() if k not in ("sources", "shard", "expected")} | {"sources": {}}
            check_manifest(manifest, part, destination)
            held = done_chunk_prefixes(manifest)
            for key, entry in part["sources"].items():
                if entry["chunk_prefix"] not in held:
                    add_entry(manifest, key, entry)
                    added += 1
            index, shards = part["shard"]
            if set(part["expected"]) <= set(part["sources"]):
                finished.add(index)
        if manifest is not None and parts:
            write_manifest(destination, manifest)
        if parts and len(finished) == shards:  # the run is complete: manifest.json alone describes it
            for path in parts:
                path.unlink()
    return added, len(finished), shards
