"""Source files to packed token chunks, in parallel and resumably: each source file is one worker task,
packed into chunk files named after it (`{prefix}_{source-stem}_{index:010d}.bin`), so names are
deterministic and no two sources share one. A source is done once the manifest records it; one that
fails leaves none of its chunks."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from functools import partial
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from filelock import FileLock

from lit_gpt.data import MAGIC, VERSION, ChunkWriter as PackedDatasetBuilder, token_dtype
from lit_gpt.prepare import manifest as manifests
from lit_gpt.prepare.gunzip import gunzip_files  # noqa: F401  (data_process/gz_unzip.py)
from lit_gpt.prepare.manifest import check_manifest, load_manifest, tokenizer_fingerprint  # noqa: F401
from lit_gpt.prepare.token_encoding import make_encoder
from lit_gpt.prepare.pool import Monitor, emit, run_tasks, worker_encoder
from lit_gpt.prepare.sources import (DEFAULT_PATTERNS, MANIFEST, PrepareError, Skipped, Source,  # noqa: F401
                                     find_sources, iter_records, shard_of)  # (for scripts)
from lit_gpt.tokenizer import load_tokenizer, tokenizer_info

DEFAULT_CHUNK_SIZE = 4097 * 1024  # (block_size 4096 + 1) * 1024, as upstream
MAX_CHUNK_SIZE = 1 << 36  # tokens: far beyond any machine's memory for one chunk buffer, so refused at once
ENCODE_BATCH_DOCS = 1024
ENCODE_BATCH_CHARS = 4_000_000
WARNINGS_PER_FILE = 10


@dataclass
class SourceResult:
    key: str
    split: str
    prefix: str
    chunk_prefix: str  # its files: {chunk_prefix}_{0 .. files-1:010d}.bin
    documents: int = 0
    tokens: int = 0  # including BOS/EOS, excluding padding
    padding: int = 0
    skipped_lines: int = 0
    files: list[str] = field(default_factory=list)
    max_token_id: int = -1  # over tokens and padding: the trainer checks it against the model's vocabulary

    def manifest_entry(self) -> dict:  # the key is the manifest's name for it
        entry = asdict(self)
        del entry["key"]
        return {**entry, "files": len(self.files)}


@dataclass
class Summary:
    sources_done: int = 0
    sources_skipped: int = 0  # completed by an earlier run
    documents: int = 0
    tokens: int = 0
    skipped_lines: int = 0
    files_written: int = 0
    seconds: float = 0.0

    def line(self, destination: Path) -> str:
        rate = self.tokens / self.seconds if self.seconds > 0 else 0.0
        already = f" ({self.sources_skipped} already done, skipped)" if self.sources_skipped else ""
        return (f"prepared {self.sources_done} source files{already}: {self.documents:,} documents, "
                f"{self.tokens:,} tokens, {self.skipped_lines:,} skipped lines, {self.files_written} chunk files "
                f"in {destination} ({self.seconds:.1f} s, {rate:,.0f} tokens/s)")


# --------------------------------------------------------------------------- one source file (in a worker)


def prepare_source(source: Source, destination: Path, chunk_size: int, strict: bool,
                   text_key: str = "text") -> SourceResult:
    """Tokenizes one source file into its chunk files; on any failure removes what it wrote."""
    encoder = worker_encoder()
    # Chunks of this source that a killed run left behind are not recorded as done: start afresh.
    for pattern in (f"{source.chunk_prefix}_{'[0-9]' * 10}.bin", f".{source.chunk_prefix}_{'[0-9]' * 10}.bin.partial-*"):
        for stale in destination.glob(pattern):
            stale.unlink()
    builder = PackedDatasetBuilder(destination, source.chunk_prefix, chunk_size, encoder.eos, encoder.dtype)
    result = SourceResult(source.key, source.split, source.prefix, source.chunk_prefix)
    texts: list[str] = []
    chars = 0

    def flush() -> None:
        nonlocal texts, chars
        if texts:
            tokens = encoder(texts)
            builder.add_array(tokens)
            result.documents += len(texts)
            result.tokens += tokens.size
            if tokens.size:
                result.max_token_id = max(result.max_token_id, int(tokens.max()))
            emit("progress", 0, len(texts), tokens.size)
            texts, chars = [], 0

    try:
        for number, text in iter_records(source.path, text_key, on_bytes=lambda n: emit("progress", n, 0, 0)):
            if isinstance(text, Skipped):
                if strict:
                    raise PrepareError(f"{source.path}:{number}: {text} (--strict)")
                result.skipped_lines += 1
                if result.skipped_lines <= WARNINGS_PER_FILE:
                    more = " (further ones in this file are only counted)" if result.skipped_lines == WARNINGS_PER_FILE else ""
                    emit("warning", f"{source.path}:{number}: {text}, skipped{more}")
                continue
            texts.append(text)
            chars += len(text)
            if len(texts) >= ENCODE_BATCH_DOCS or chars >= ENCODE_BATCH_CHARS:
                flush()
        flush()
        result.padding = builder.padding
        if result.padding:
            result.max_token_id = max(result.max_token_id, int(encoder.eos))
        result.files = [p.name for p in builder.finish()]
    except BaseException as err:
        for path in builder.filenames:
            path.unlink(missing_ok=True)
        if isinstance(err, OSError):  # reading errors are PrepareErrors already: this is the destination
            raise PrepareError(f"cannot write the chunks of {source.path} to {destination}: {err.strerror or err}") from None
        raise
    return result


# --------------------------------------------------------------------------- the whole run


def check_options(chunk_size: int, num_workers: Optional[int], train_prefix: str, val_prefix: str,
                  text_key: str, num_shards: int, shard_index: int) -> None:
    """Every option that can be judged before a file is read."""
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise PrepareError(f"--chunk_size must be a positive number of tokens, got {chunk_size}")
    if chunk_size > MAX_CHUNK_SIZE:
        raise PrepareError(f"--chunk_size {chunk_size} is beyond {MAX_CHUNK_SIZE} tokens: each worker holds one chunk "
                           "in memory (the default is 4097*1024)")
    if num_workers is not None and num_workers < 1:
        raise PrepareError(f"--num_workers must be at least 1, got {num_workers}")
    if not text_key:
        raise PrepareError("--text_key must name the field or column that holds the text")
    if num_shards < 1:
        raise PrepareError(f"--num_shards must be at least 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise PrepareError(f"--shard_index must be in 0 .. {num_shards - 1} (--num_shards {num_shards}), got {shard_index}")
    for name, prefix in (("--train_prefix", train_prefix), ("--val_prefix", val_prefix)):
        if not prefix or not re.fullmatch(r"[A-Za-z0-9._-]+", prefix):
            raise PrepareError(f"{name} must be a non-empty file name prefix, got {prefix!r}")
    if train_prefix == val_prefix:
        raise PrepareError(f"--train_prefix and --val_prefix are both {train_prefix!r}: the training and validation "
                           "chunks would be one set of files")
    if train_prefix.startswith(val_prefix) or val_prefix.startswith(train_prefix):
        raise PrepareError(f"--train_prefix {train_prefix!r} and --val_prefix {val_prefix!r}: one starts the other, "
                           "so a prefix glob would mix the splits")


def _check_memory(chunk_size: int, dtype, workers: int) -> None:
    """Each worker fills one chunk buffer: refuse a size the machine cannot hold before any work."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return
    need = chunk_size * np.dtype(dtype).itemsize * workers
    if need > memory:
        raise PrepareError(f"--chunk_size {chunk_size}: {workers} workers x one chunk of {np.dtype(dtype).name} "
                           f"tokens need {need / 2**30:.1f} GiB, this machine has {memory / 2**30:.1f} GiB")


def _check_prefixes(manifest: dict, sources: list[Source], destination: Path) -> None:
    """A new named source must not share a prefix glob with another one, nor a prefix with another split."""
    recorded = {(e.get("prefix") or manifest.get("prefixes", {}).get(e.get("split")), e.get("split"))
                for e in manifest["sources"].values()}
    for new_prefix, new_split in {(s.prefix, s.split) for s in sources}:  # prefixes are never empty
        for prefix, split in recorded:
            if prefix == new_prefix and split != new_split:
                raise PrepareError(f"{destination} holds {split} chunks with prefix {prefix!r}; choose another "
                                   f"prefix for the {new_split} files")
            if prefix and prefix != new_prefix and (prefix.startswith(new_prefix) or new_prefix.startswith(prefix)):
                raise PrepareError(f"prefix {new_prefix!r} and the prefix {prefix!r} of {destination}: one starts "
                                   "the other, so a prefix glob would mix them")


def _check_destination(destination: Path, manifest: Optional[dict], prefixes: tuple[str, ...]) -> None:
    try:
        destination.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=destination).close()  # unnamed where it can be: no leftover if killed
    except OSError as err:
        raise PrepareError(f"cannot write to destination {destination}: {err.strerror or err}") from None
    if manifest is None and not list(destination.glob(manifests.PART_GLOB)):
        foreign = [p.name for prefix in prefixes for p in destination.glob(f"{prefix}*.bin")]
        if foreign:
            raise PrepareError(f"{destination} already holds chunk files ({foreign[0]}, ...) but no {MANIFEST}: they "
                               "were not made by this tool or its manifest is lost; use another --destination_path")


def prepare(
    source_path: Union[str, Path],
    destination_path: Union[str, Path],
    tokenizer_dir: Union[str, Path],
    split: str = "all",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    num_workers: Optional[int] = None,
    strict: bool = False,
    train_prefix: str = "c4",
    val_prefix: str = "validation",
    parse_special_tokens: bool = False,
    progress: Optional[bool] = None,
    encoding: str = "default",
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    text_key: str = "text",
    train_pattern: str = DEFAULT_PATTERNS["train"],
    val_pattern: str = DEFAULT_PATTERNS["validation"],
    num_shards: int = 1,
    shard_index: int = 0,
) -> Summary:
    """Prepares every source file of this shard that the manifest does not record as done (options:
    `meap-prepare --help`); bad input raises PrepareError, completed work is kept."""
    started = time.perf_counter()
    source_path, destination = Path(source_path).expanduser(), Path(destination_path).expanduser()
    check_options(chunk_size, num_workers, train_prefix, val_prefix, text_key, num_shards, shard_index)
    sources = find_sources(source_path, destination, split, train_prefix, val_prefix, train_pattern, val_pattern,
                           report=log)
    if num_shards > 1:
        sources = shard_of(sources, num_shards, shard_index)
    manifest = load_manifest(destination)
    _check_destination(destination, manifest, (train_prefix, val_prefix))

    tokenizer = load_tokenizer(tokenizer_dir)
    info = tokenizer_info(tokenizer, tokenizer_dir)
    dtype = token_dtype(info.vocab_size)
    workers = max(1, min(num_workers or os.cpu_count() or 1, len(sources)))
    _check_memory(chunk_size, dtype, workers)
    # Built once: the workers inherit (or unpickle) it.
    encoder = make_encoder(tokenizer, tokenizer_dir, dtype, parse_special_tokens=parse_special_tokens, encoding=encoding)
    settings = {
        "format": {"magic": MAGIC.decode(), "version": VERSION},
        "chunk_size": chunk_size,
        "dtype": np.dtype(dtype).name,
        "separator_id": info.eos_id,
        "tokenizer": {"path": str(Path(tokenizer_dir).expanduser().resolve()),
                      "fingerprint": tokenizer_fingerprint(tokenizer), **info.to_dict()},
        # What wrote the tokens: the library, and whether each document starts with BOS.
        "encoding": {"name": encoding, "backend": encoder.library, "method": encoder.method,
                     "bos_added": encoder.adds_bos, "parse_special_tokens": parse_special_tokens},
        "prefixes": {"train": train_prefix, "validation": val_prefix},
    }
    if manifest is not None:
        check_manifest(manifest, settings, destination)
        _check_prefixes(manifest, sources, destination)
    done = manifests.done_chunk_prefixes(manifest) if manifest is not None else set()

    if num_shards > 1:
        # This shard records into its own part file: no two machines write one file.
        part_name = manifests.part_name(shard_index, num_shards)
        part = load_manifest(destination, part_name)
        for other in sorted(destination.glob(manifests.PART_GLOB))[:1]:
            check_manifest(manifests._read(other), settings, destination)
        if part is None:
            part = {**settings, "shard": [shard_index, num_shards], "expected": sorted(s.key for s in sources),
                    "sources": {}}
            manifests.write_manifest(destination, part, part_name)
        done |= manifests.done_chunk_prefixes(part)

        def save(result: SourceResult) -> None:
            part["sources"][result.key] = result.manifest_entry()
            manifests.write_manifest(destination, part, part_name)
    else:
        if manifest is None:
            with FileLock(destination / manifests.LOCK):
                if load_manifest(destination) is None:
                    manifests.write_manifest(destination, {**settings, "sources": {}})

        def save(result: SourceResult) -> None:
            with FileLock(destination / manifests.LOCK):  # another named source may be written meanwhile
                current = load_manifest(destination)
                check_manifest(current, settings, destination)  # also records the encoding of an old manifest
                manifests.add_entry(current, result.key, result.manifest_entry())
                manifests.write_manifest(destination, current)

    todo = [s for s in sources if s.chunk_prefix not in done]
    summary = Summary(sources_skipped=len(sources) - len(todo))
    if summary.sources_skipped:
        log(f"{summary.sources_skipped} of {len(sources)} source files are already done (per {destination / MANIFEST})")
    todo.sort(key=lambda s: s.path.stat().st_size, reverse=True)  # big files first balances the workers

    def record(result: SourceResult) -> None:
        save(result)
        summary.sources_done += 1
        summary.documents += result.documents
        summary.tokens += result.tokens
        summary.skipped_lines += result.skipped_lines
        summary.files_written += len(result.files)

    failures: list[str] = []
    if todo:
        monitor = Monitor(sum(s.path.stat().st_size for s in todo), progress, log)
        try:
            # A partial of a module function pickles, for the worker processes.
            task = partial(prepare_source, destination=destination, chunk_size=chunk_size, strict=strict,
                           text_key=text_key)
            failures = run_tasks(todo, task, record, encoder, min(workers, len(todo)), monitor)
        finally:
            monitor.close()
    if num_shards > 1:
        _, finished, _ = manifests.merge_parts(destination)
        log(f"shard {shard_index} of {num_shards}: " + (
            f"{MANIFEST} holds every shard's files" if finished == num_shards else
            f"{num_shards - finished} shards not finished yet; the last one to finish completes {MANIFEST}"))
    summary.seconds = time.perf_counter() - started
    if failures:
        others = f" (and {len(failures) - 1} more files)" if len(failures) > 1 else ""
        raise PrepareError(f"{failures[0]}{others}; {summary.sources_done} other source files were prepared and "
                           f"recorded in {destination / MANIFEST}")
    return summary


def merge(destination_path: Union[str, Path]) -> str:
    """Merges the shards' part files of a run split over machines into manifest.json."""
    destination = Path(destination_path).expanduser()
    if not destination.is_dir():
        raise PrepareError(f"destination not found: {destination}")
    if not list(destination.glob(manifests.PART_GLOB)):
        return f"{destination}: no shard part files to merge ({MANIFEST} is complete)"
    added, finished, shards = manifests.merge_parts(destination)
    return (f"merged {added} source files into {destination / MANIFEST}"
            + (f"; {shards - finished} of {shards} shards have files still to prepare" if finished < shards else ""))
