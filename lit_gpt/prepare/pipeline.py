"""C4 JSON lines (.json.gz, .json, .jsonl) to packed token chunks, in parallel and resumably.

Each source file (found recursively) is one task for a worker process: read lines, encode
documents in batches (`lit_gpt.prepare.token_encoding.make_encoder`: a sentencepiece tokenizer.model with
the sentencepiece library, BOS first; other tokenizers with the Rust tokenizer), append EOS to each,
and pack them into chunk files named after the source (`{prefix}_{source-stem}_{index:010d}.bin`),
so names are deterministic and no two sources share one. A source counts as done once
`manifest.json` in the destination records it; a re-run skips it. Chunks are written under a
temporary name and renamed when complete. Workers end when the main process dies.
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import json
import multiprocessing
import os
import queue
import re
import shutil
import signal
import sys
import threading
import time
import zlib
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import numpy as np

from lit_gpt.errors import UserError
from lit_gpt.data import MAGIC, VERSION, ChunkWriter as PackedDatasetBuilder, token_dtype
from lit_gpt.prepare.token_encoding import make_encoder
from lit_gpt.tokenizer import load_tokenizer, tokenizer_info

try:  # several times faster than json on C4 lines; optional
    import orjson

    _json_loads, _STDLIB_JSON = orjson.loads, False
except ImportError:  # pragma: no cover - depends on the environment
    _json_loads, _STDLIB_JSON = json.loads, True

DEFAULT_CHUNK_SIZE = 4097 * 1024  # (block_size 4096 + 1) * 1024, as upstream
SOURCE_SUFFIXES = (".json.gz", ".jsonl.gz", ".json", ".jsonl")
MANIFEST = "manifest.json"
SPLITS = ("train", "validation")
ENCODE_BATCH_DOCS = 1024
ENCODE_BATCH_CHARS = 4_000_000
WARNINGS_PER_FILE = 10


class PrepareError(UserError):
    """Bad input to data preparation; the message names the file, line or argument."""


@dataclass(frozen=True)
class Source:
    path: Path
    key: str  # the file name: the manifest's name for it
    split: str  # "train" or "validation"
    prefix: str  # chunk file prefix for its split

    @property
    def chunk_prefix(self) -> str:
        return f"{self.prefix}_{re.sub(r'[^A-Za-z0-9._-]', '_', _strip_suffix(self.key))}"


@dataclass
class SourceResult:
    key: str
    split: str
    chunk_prefix: str
    documents: int = 0
    tokens: int = 0  # including BOS/EOS, excluding padding
    padding: int = 0
    skipped_lines: int = 0
    files: list[str] = field(default_factory=list)
    max_token_id: int = -1  # over tokens and padding: the trainer checks it against the model's vocabulary

    def manifest_entry(self) -> dict:
        return {
            "split": self.split,
            "chunk_prefix": self.chunk_prefix,  # its files: {chunk_prefix}_{0 .. files-1:010d}.bin
            "documents": self.documents,
            "tokens": self.tokens,
            "padding": self.padding,
            "skipped_lines": self.skipped_lines,
            "files": len(self.files),
            "max_token_id": self.max_token_id,
        }


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
        return (
            f"prepared {self.sources_done} source files{already}: {self.documents:,} documents, "
            f"{self.tokens:,} tokens, {self.skipped_lines:,} skipped lines, {self.files_written} chunk files "
            f"in {destination} ({self.seconds:.1f} s, {rate:,.0f} tokens/s)"
        )


# --------------------------------------------------------------------------- finding sources


def split_of(name: str) -> str:
    return "validation" if name.startswith("c4-validation") else "train"


def find_sources(
    source_path: Path, destination: Path, split: str = "all", train_prefix: str = "c4", val_prefix: str = "validation"
) -> list[Source]:
    """The C4 files in the folder `source_path` and its subfolders (or that one file).

    Hidden files and folders, the destination and files named manifest.json are left out. A file
    name found in two subfolders is an error: a clone of allenai/c4 holds en/, en.noblocklist/,
    realnewslike/ side by side with the same names, and only one of them is meant.
    """
    source_path = source_path.expanduser()
    if not source_path.exists():
        raise PrepareError(f"source path not found: {source_path}")
    if source_path.is_file():
        if not source_path.name.endswith(SOURCE_SUFFIXES):
            raise PrepareError(f"{source_path} is not a {', '.join(SOURCE_SUFFIXES)} file")
        paths, root = [source_path], source_path.parent
    else:
        paths, root = _walk_sources(source_path, destination.expanduser().resolve()), source_path
    if not paths:
        suffixes = ", ".join("*" + s for s in SOURCE_SUFFIXES)
        raise PrepareError(f"no C4 files ({suffixes}) in {source_path} or its subfolders")
    # The gzip file wins over an unzipped copy of it: its checksum catches corruption.
    by_stem: dict[str, Path] = {}
    for path in paths:
        stem = _strip_suffix(path.relative_to(root).as_posix())
        if stem not in by_stem or path.name.endswith(".gz"):
            by_stem[stem] = path
    folders_of: dict[str, list[str]] = {}
    for path in by_stem.values():
        folders_of.setdefault(path.name, []).append(path.parent.relative_to(root).as_posix())
    for name, folders in sorted(folders_of.items()):
        if len(folders) > 1:
            raise PrepareError(
                f"{name} is in {folders[0]}/ and {folders[1]}/ under {source_path}: point --source_path at the one "
                "folder meant (a C4 clone holds en/, en.noblocklist/, realnewslike/ side by side)"
            )
    prefixes = {"train": train_prefix, "validation": val_prefix}
    sources = []
    for path in sorted(by_stem.values(), key=lambda p: p.name):
        file_split = split_of(path.name)
        if split in ("all", file_split):
            sources.append(Source(path, path.name, file_split, prefixes[file_split]))
    if not sources:
        raise PrepareError(f"no {split} files in {source_path} (validation files are named c4-validation.*)")
    return sources


def _walk_sources(folder: Path, destination: Path) -> list[Path]:
    paths = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        # Pruned in place, so os.walk never enters them.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != destination)
        paths += [here / name for name in sorted(filenames) if name.endswith(SOURCE_SUFFIXES)
                  and not name.startswith(".") and name != MANIFEST and (here / name).is_file()]
    return paths


def _strip_suffix(name: str) -> str:
    for suffix in SOURCE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# --------------------------------------------------------------------------- manifest


def tokenizer_fingerprint(tokenizer) -> str:
    """Changes whenever any token's id does, so two runs can tell whether they used the same vocabulary."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()[:16]


# Settings that must agree across runs writing into one destination.
_MUST_MATCH = ("chunk_size", "dtype", "tokenizer.fingerprint", "tokenizer.vocab_size", "tokenizer.bos_id",
               "tokenizer.eos_id", "tokenizer.mask_id", "tokenizer.adds_bos", "encoding.backend",
               "encoding.bos_added", "encoding.parse_special_tokens")


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part, {}) if isinstance(d, dict) else {}
    return d if d != {} else None


def load_manifest(destination: Path) -> Optional[dict]:
    path = destination / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest.get("sources"), dict):
            raise ValueError("no 'sources' table")
    except (ValueError, OSError, AttributeError) as err:
        raise PrepareError(f"{path} is unreadable ({err}); move it away or choose another destination") from None
    return manifest


def check_manifest(manifest: dict, settings: dict, destination: Path) -> None:
    if "encoding" not in manifest and isinstance(manifest.get("tokenizer"), dict):
        # Written before the encoding was recorded: every folder was encoded by the Hugging Face
        # tokenizer call, with BOS as it adds it and special tokens as text.
        manifest["encoding"] = {"backend": "tokenizers", "bos_added": manifest["tokenizer"].get("adds_bos"),
                                "parse_special_tokens": False}
    for key in _MUST_MATCH:
        if _get(manifest, key) == _get(settings, key):
            continue
        if key.startswith("tokenizer."):
            raise PrepareError(
                f"{destination} holds chunks made with another tokenizer ({_get(manifest, 'tokenizer.path')}, "
                f"{key}={_get(manifest, key)!r}) than {_get(settings, 'tokenizer.path')} ({_get(settings, key)!r}); "
                "use another --destination_path"
            )
        raise PrepareError(
            f"{destination} holds chunks made with {key}={_get(manifest, key)!r}, this run has "
            f"{_get(settings, key)!r}; use another --destination_path"
        )


def write_manifest(destination: Path, manifest: dict) -> None:
    """Replaces the manifest in one step, so a crash leaves the old or the new one, never half of one."""
    manifest["sources"] = dict(sorted(manifest["sources"].items()))
    from lit_gpt.io.atomic import write_text

    write_text(destination / MANIFEST, json.dumps(manifest, indent=1) + "\n", "the manifest")


def _check_destination(destination: Path, manifest: Optional[dict], prefixes: tuple[str, ...]) -> None:
    try:
        destination.mkdir(parents=True, exist_ok=True)
        probe = destination / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PrepareError(f"cannot write to destination {destination}: {err.strerror or err}") from None
    if manifest is None:
        foreign = [p.name for prefix in prefixes for p in destination.glob(f"{prefix}*.bin")]
        if foreign:
            raise PrepareError(
                f"{destination} already holds chunk files ({foreign[0]}, ...) but no {MANIFEST}: they were not made "
                "by this tool or its manifest is lost; use another --destination_path"
            )


# --------------------------------------------------------------------------- reading and encoding


def iter_records(path: Path, on_bytes: Callable[[int], None] = lambda n: None) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON or the exception) for each non-blank line; corrupt gzip raises PrepareError."""
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if path.name.endswith(".gz") else raw
            position = 0
            for number, line in enumerate(stream, start=1):
                if number % 4096 == 0:
                    now = raw.tell()
                    on_bytes(now - position)
                    position = now
                if not line.strip():
                    continue
                try:
                    yield number, _json_loads(line)
                except ValueError as err:  # JSON errors and undecodable bytes
                    yield number, err
            on_bytes(raw.tell() - position)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise PrepareError(f"{path}: corrupt gzip ({err or type(err).__name__})") from None
    except OSError as err:
        raise PrepareError(f"cannot read {path}: {err.strerror or err}") from None


# --------------------------------------------------------------------------- one source file (in a worker)

_worker: dict = {}


def _init_worker(encoder, events, single_thread: bool, parent_pid: Optional[int] = None) -> None:
    if single_thread:  # the processes are the parallelism; tokenizer threads on top only contend
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    encoder.set_threads(1 if single_thread else (os.cpu_count() or 1))
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    _worker.update(encoder=encoder, events=events)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _exit_with_parent(parent_pid: int) -> None:
    """Ends this worker when the main process dies (killed, it cannot shut the pool down): a
    worker left behind would hold a core and keep writing into the destination."""
    if sys.platform.startswith("linux"):
        try:  # the kernel signals this process the moment its parent exits
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before that was set up
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


def _watch_parent(parent_pid: int) -> None:
    """The portable backstop: once orphaned, a process is re-parented, so its parent id changes."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _emit(kind: str, *payload) -> None:
    events = _worker.get("events")
    if events is not None:
        events.put((kind, *payload))


def prepare_source(source: Source, destination: Path, chunk_size: int, strict: bool) -> SourceResult:
    """Tokenizes one source file into its chunk files; on any failure removes what it wrote."""
    encoder = _worker["encoder"]
    # Chunks of this source that a killed run left behind are not recorded as done: start afresh.
    for pattern in (f"{source.chunk_prefix}_{'[0-9]' * 10}.bin", f".{source.chunk_prefix}_{'[0-9]' * 10}.bin.partial-*"):
        for stale in destination.glob(pattern):
            stale.unlink()
    builder = PackedDatasetBuilder(destination, source.chunk_prefix, chunk_size, encoder.eos, encoder.dtype)
    result = SourceResult(source.key, source.split, source.chunk_prefix)
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
            _emit("progress", 0, len(texts), tokens.size)
            texts, chars = [], 0

    try:
        for number, record in iter_records(source.path, on_bytes=lambda n: _emit("progress", n, 0, 0)):
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str) or (_STDLIB_JSON and not _is_unicode(text)):
                reason = _why_skipped(record)
                if strict:
                    raise PrepareError(f"{source.path}:{number}: {reason} (--strict)")
                result.skipped_lines += 1
                if result.skipped_lines <= WARNINGS_PER_FILE:
                    more = " (further ones in this file are only counted)" if result.skipped_lines == WARNINGS_PER_FILE else ""
                    _emit("warning", f"{source.path}:{number}: {reason}, skipped{more}")
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


def _why_skipped(record) -> str:
    if isinstance(record, Exception):
        return f"malformed JSON ({str(record).splitlines()[0] if str(record) else type(record).__name__})"
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if "text" not in record:
        return "no 'text' field"
    if isinstance(record["text"], str):
        return "'text' holds an unpaired surrogate escape, not Unicode text"
    return f"'text' is a {type(record['text']).__name__}, not a string"


def _is_unicode(text: str) -> bool:
    """False for a str with lone surrogates, which json (unlike orjson) lets through from "\\ud800"."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --------------------------------------------------------------------------- the whole run


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
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Summary:
    """Prepares every C4 file under `source_path` that `destination_path/manifest.json` does not
    record as done. Raises PrepareError (a UserError) for bad input; completed work is kept.

    `parse_special_tokens` turns the tokenizer's special-token strings in text ("<s>", "</s>") into
    their ids, as upstream's prepare did; by default they are encoded as text. "[MASK]" is always text.
    """
    started = time.perf_counter()
    source_path, destination = Path(source_path).expanduser(), Path(destination_path).expanduser()
    if split not in ("all", *SPLITS):
        raise PrepareError(f"--split must be one of all, train, validation; got {split!r}")
    if chunk_size <= 0:
        raise PrepareError(f"--chunk_size must be positive, got {chunk_size}")
    if num_workers is not None and num_workers < 1:
        raise PrepareError(f"--num_workers must be at least 1, got {num_workers}")
    for name, prefix in (("--train_prefix", train_prefix), ("--val_prefix", val_prefix)):
        if not prefix or not re.fullmatch(r"[A-Za-z0-9._-]+", prefix):
            raise PrepareError(f"{name} must be a non-empty file name prefix, got {prefix!r}")
    if train_prefix != val_prefix and (train_prefix.startswith(val_prefix) or val_prefix.startswith(train_prefix)):
        raise PrepareError(
            f"--train_prefix {train_prefix!r} and --val_prefix {val_prefix!r}: one starts the other, so a prefix "
            "glob would mix the splits"
        )
    sources = find_sources(source_path, destination, split, train_prefix, val_prefix)
    manifest = load_manifest(destination)
    _check_destination(destination, manifest, (train_prefix, val_prefix))

    tokenizer = load_tokenizer(tokenizer_dir)
    info = tokenizer_info(tokenizer, tokenizer_dir)
    dtype = token_dtype(info.vocab_size)
    # Built once: the workers inherit (or unpickle) it.
    encoder = make_encoder(tokenizer, tokenizer_dir, dtype, parse_special_tokens=parse_special_tokens)
    settings = {
        "format": {"magic": MAGIC.decode(), "version": VERSION},
        "chunk_size": chunk_size,
        "dtype": np.dtype(dtype).name,
        "separator_id": info.eos_id,
        "tokenizer": {
            "path": str(Path(tokenizer_dir).expanduser().resolve()),
            "fingerprint": tokenizer_fingerprint(tokenizer),
            **info.to_dict(),
        },
        "encoding": {  # what wrote the tokens: the library, and whether each document starts with BOS
            "backend": encoder.library,
            "method": encoder.method,
            "bos_added": encoder.adds_bos,
            "parse_special_tokens": parse_special_tokens,
        },
        "prefixes": {"train": train_prefix, "validation": val_prefix},
    }
    if manifest is not None:
        check_manifest(manifest, settings, destination)
    else:
        manifest = {**settings, "sources": {}}
        write_manifest(destination, manifest)

    summary = Summary()
    todo = [s for s in sources if s.key not in manifest["sources"]]
    summary.sources_skipped = len(sources) - len(todo)
    if summary.sources_skipped:
        log(f"{summary.sources_skipped} of {len(sources)} source files are already done (per {destination / MANIFEST})")
    if not todo:
        summary.seconds = time.perf_counter() - started
        return summary
    todo.sort(key=lambda s: s.path.stat().st_size, reverse=True)  # big files first balances the workers

    workers = min(num_workers or os.cpu_count() or 1, len(todo))
    failures: list[str] = []

    def record(result: SourceResult) -> None:
        manifest["sources"][result.key] = result.manifest_entry()
        write_manifest(destination, manifest)
        summary.sources_done += 1
        summary.documents += result.documents
        summary.tokens += result.tokens
        summary.skipped_lines += result.skipped_lines
        summary.files_written += len(result.files)

    bar = _progress_bar(sum(s.path.stat().st_size for s in todo), progress)
    monitor = _Monitor(bar, log)
    try:
        if workers == 1:
            # In-process: one source at a time, the Rust tokenizer's threads are the parallelism.
            _init_worker(encoder, monitor, single_thread=False)
            for source in todo:
                try:
                    record(prepare_source(source, destination, chunk_size, strict))
                except PrepareError as err:
                    failures.append(str(err))
        else:
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            events = context.Queue()
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker,
                initargs=(encoder, events, True, os.getpid())
            ) as pool:
                pending: dict[Future, Source] = {
                    pool.submit(prepare_source, s, destination, chunk_size, strict): s for s in todo
                }
                try:
                    while pending:
                        done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                        monitor.drain(events)
                        for future in done:
                            pending.pop(future)
                            try:
                                record(future.result())
                            except PrepareError as err:
                                failures.append(str(err))
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
            monitor.drain(events)
    finally:
        _worker.clear()
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - started
    if failures:
        others = f" (and {len(failures) - 1} more files)" if len(failures) > 1 else ""
        raise PrepareError(
            f"{failures[0]}{others}; {summary.sources_done} other source files were prepared and recorded in "
            f"{destination / MANIFEST}"
        )
    return summary


class _Monitor:
    """Turns the workers' events into progress-bar updates and warning lines."""

    def __init__(self, bar, log):
        self.bar, self.log = bar, log
        self.documents = self.tokens = 0
        self.started = time.perf_counter()

    def drain(self, events) -> None:
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                break
            self.put(event)

    def put(self, event: tuple) -> None:
        """Handles one event at once (the in-process run hands them over directly)."""
        kind, *payload = event
        if kind == "warning":
            (self.bar.write if self.bar is not None else self.log)(f"warning: {payload[0]}")
            return
        nbytes, documents, tokens = payload
        self.documents += documents
        self.tokens += tokens
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(
                f"{self.documents / elapsed:,.0f} docs/s, {self.tokens / elapsed:,.0f} tokens/s", refresh=False
            )
            self.bar.update(nbytes)


def _progress_bar(total_bytes: int, progress: Optional[bool]):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total_bytes, unit="B", unit_scale=True, desc="source read", dynamic_ncols=True)


# --------------------------------------------------------------------------- unzipping (optional)


def gunzip_files(source_dir: Union[str, Path], destination_dir: Union[str, Path, None] = None,
                 remove_source: bool = False) -> list[Path]:
    """Decompresses every *.gz under `source_dir` next to it (or into `destination_dir`).

    Prepare reads .json.gz directly; this only keeps the upstream unzip step available. Outputs
    are written under a temporary name; existing outputs are left alone.
    """
    source_dir = Path(source_dir).expanduser()
    if not source_dir.is_dir():
        raise UserError(f"source directory not found: {source_dir}")
    archives = sorted(p for p in source_dir.rglob("*.gz") if p.is_file())
    if not archives:
        raise UserError(f"no .gz files in {source_dir}")
    written = []
    for archive in archives:
        out_dir = source_dir if destination_dir is None else Path(destination_dir).expanduser()
        target = (out_dir / archive.relative_to(source_dir)).with_suffix("")
        if target.exists():
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            try:
                with gzip.open(archive, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise UserError(f"{archive}: corrupt gzip ({err or type(err).__name__})") from None
        except OSError as err:
            raise UserError(f"cannot unzip {archive} to {target}: {err.strerror or err}") from None
        if remove_source:
            archive.unlink()
        written.append(target)
    return written
