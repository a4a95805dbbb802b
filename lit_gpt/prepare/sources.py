"""Finding the source files of a corpus and their split, and reading their texts (JSON lines, also
.gz/.zst; Parquet, a record batch at a time, so memory follows the row group, not the file; Arrow IPC
as `datasets` saves it). A file's split is explicit: --train_pattern / --val_pattern, or the split
folders of a `DatasetDict.save_to_disk` folder; a file matching neither is reported and not read."""

from __future__ import annotations

import fnmatch
import gzip
import io
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from lit_gpt.errors import UserError, first_line

try:  # several times faster than json on C4 lines; optional
    import orjson

    _json_loads, _STDLIB_JSON = orjson.loads, False
except ImportError:  # pragma: no cover - depends on the environment
    _json_loads, _STDLIB_JSON = json.loads, True

JSON_SUFFIXES = tuple(base + comp for comp in (".gz", ".zst", "") for base in (".json", ".jsonl"))
SOURCE_SUFFIXES = (*JSON_SUFFIXES, ".parquet", ".arrow")
MANIFEST = "manifest.json"
SPLITS = ("train", "validation")
DEFAULT_PATTERNS = {"train": "c4-train.*", "validation": "c4-validation.*"}
DATASET_DICT = "dataset_dict.json"  # marks a `DatasetDict.save_to_disk` folder: its subfolders are the splits
SAVED_METADATA = ("state.json", "dataset_info.json")  # what `save_to_disk` writes beside its .arrow files
BATCH_ROWS = 1024  # rows per Parquet / Arrow batch read
MANY_BRACKETS = 256  # above this many brackets in one line, JSON is parsed by the standard library
# Lone surrogates, which json (unlike orjson) lets through from "\\ud800": not Unicode text.
_SURROGATE = re.compile("[\ud800-\udfff]")


class PrepareError(UserError):
    """Bad input to data preparation; the message names the file, line or argument."""


class Skipped(str):
    """A record that holds no text to prepare; its value says why (for the warning line)."""


@dataclass(frozen=True)
class Source:
    path: Path
    key: str  # the manifest's name for it: the file name, or its path below --source_path
    split: str  # "train" or "validation"
    prefix: str  # chunk file prefix for its split

    @property
    def chunk_prefix(self) -> str:
        return f"{self.prefix}_{re.sub(r'[^A-Za-z0-9._-]', '_', strip_suffix(self.key))}"


def strip_suffix(name: str) -> str:
    return next((name[: -len(suffix)] for suffix in SOURCE_SUFFIXES if name.endswith(suffix)), name)


def parse_patterns(text: str, option: str) -> tuple[str, ...]:
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    if not patterns:
        raise PrepareError(f"{option} is empty: give one or more glob patterns, comma-separated")
    return patterns


# --------------------------------------------------------------------------- finding files


def find_sources(
    source_path: Path,
    destination: Path,
    split: str = "all",
    train_prefix: str = "c4",
    val_prefix: str = "validation",
    train_pattern: str = DEFAULT_PATTERNS["train"],
    val_pattern: str = DEFAULT_PATTERNS["validation"],
    report: Callable[[str], None] = lambda line: None,
) -> list[Source]:
    """The source files of `split` under `source_path` (or that one file), but hidden ones, the
    destination and manifest.json; files in no split are passed to `report` in one line."""
    if split not in ("all", *SPLITS):  # the command line's choices; `prepare()` callers get the same refusal
        raise PrepareError(f"--split must be one of all, train, validation; got {split!r}")
    source_path = Path(source_path).expanduser()
    if not source_path.exists():
        raise PrepareError(f"source path not found: {source_path}")
    patterns = {"train": parse_patterns(train_pattern, "--train_pattern"),
                "validation": parse_patterns(val_pattern, "--val_pattern")}
    if source_path.is_file():
        if not source_path.name.endswith(SOURCE_SUFFIXES):
            raise PrepareError(f"{source_path} is not a {', '.join(SOURCE_SUFFIXES)} file")
        paths, root = [source_path], source_path.parent
    else:
        paths, root = _walk(source_path, Path(destination).expanduser().resolve()), source_path
    if not paths:
        suffixes = ", ".join("*" + s for s in SOURCE_SUFFIXES)
        raise PrepareError(f"no C4 files or other sources ({suffixes}) in {source_path} or its subfolders")
    split_folders = _dataset_dict_splits(root)
    # The gzip file wins over an unzipped copy of it: its checksum catches corruption.
    by_stem: dict[str, Path] = {}
    for path in paths:
        stem = strip_suffix(path.relative_to(root).as_posix())
        if stem not in by_stem or path.name.endswith(".gz"):
            by_stem[stem] = path
    chosen: list[tuple[Path, str, str]] = []  # (path, key, split)
    unmatched: list[str] = []
    for path in sorted(by_stem.values(), key=lambda p: p.relative_to(root).as_posix()):
        relative = path.relative_to(root).as_posix()
        file_split, key = _split_of(relative, patterns, split_folders)
        if file_split is None:
            unmatched.append(relative)
        else:
            chosen.append((path, key, file_split))
    if unmatched:
        shown = ", ".join(unmatched[:3]) + (f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else "")
        report(f"not read: {len(unmatched)} files under {source_path} match neither --train_pattern "
               f"{train_pattern!r} nor --val_pattern {val_pattern!r}: {shown}")
    folders_of: dict[str, list[str]] = {}
    for path, key, _ in chosen:
        folders_of.setdefault(key, []).append(path.parent.relative_to(root).as_posix())
    for key, folders in sorted(folders_of.items()):
        if len(folders) > 1:
            raise PrepareError(
                f"{key} is in {folders[0]}/ and {folders[1]}/ under {source_path}: point --source_path at the one "
                "folder meant (a C4 clone holds en/, en.noblocklist/, realnewslike/ side by side), or select files "
                "by their path with a pattern holding '/' (e.g. 'train/*/*.jsonl.zst')"
            )
    prefixes = {"train": train_prefix, "validation": val_prefix}
    sources = [Source(path, key, s, prefixes[s]) for path, key, s in sorted(chosen, key=lambda c: c[1])
               if split in ("all", s)]
    if not sources:
        raise PrepareError(f"no {'' if split == 'all' else split + ' '}files in {source_path} match "
                           f"--train_pattern {train_pattern!r} or --val_pattern {val_pattern!r}")
    return sources


def _split_of(relative: str, patterns: dict, split_folders: dict[str, str]) -> tuple[Optional[str], str]:
    """(split or None, manifest key) of the file at `relative` (posix path below the source root)."""
    top = relative.split("/", 1)[0]
    if top in split_folders:  # a DatasetDict's split folder: the folder says the split
        return split_folders[top], relative
    name = relative.rsplit("/", 1)[-1]
    found = []
    for split, globs in patterns.items():
        for pattern in globs:
            if fnmatch.fnmatchcase(relative if "/" in pattern else name, pattern):
                found.append((split, relative if "/" in pattern else name))
                break
    if len(found) > 1:
        raise PrepareError(f"{relative} matches both --train_pattern and --val_pattern: make them exclusive")
    return found[0] if found else (None, name)


def _dataset_dict_splits(root: Path) -> dict[str, str]:
    """{folder: split} for the train/validation folders of a DatasetDict saved at `root`."""
    path = root / DATASET_DICT
    if not path.is_file():
        return {}
    try:
        names = json.loads(path.read_text())["splits"]
    except (ValueError, OSError, KeyError, TypeError) as err:
        raise PrepareError(f"{path} is unreadable ({err})") from None
    return {name: name for name in names if name in SPLITS}


def _walk(folder: Path, destination: Path) -> list[Path]:
    paths = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        # Pruned in place, so os.walk never enters them.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != destination)
        saved_dataset = any(name.endswith(".arrow") for name in filenames)
        for name in sorted(filenames):
            path = here / name
            if not name.endswith(SOURCE_SUFFIXES) or name.startswith(".") or name == MANIFEST:
                continue
            if saved_dataset and name in SAVED_METADATA:  # no texts in them
                continue
            if path.is_symlink() and not path.exists():  # a shard gone missing must not pass unnoticed
                raise PrepareError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist")
            if path.is_file():
                paths.append(path)
    return paths


def shard_of(sources: list[Source], num_shards: int, shard_index: int) -> list[Source]:
    """This machine's share: every num_shards-th file in the order of the keys, so the shards are
    disjoint, cover every file, and agree on any machine that sees the same files."""
    return sorted(sources, key=lambda s: (s.split, s.key))[shard_index::num_shards]


# --------------------------------------------------------------------------- reading texts


def iter_records(
    path: Path, text_key: str = "text", on_bytes: Callable[[int], None] = lambda n: None
) -> Iterator[tuple[int, Union[str, Skipped]]]:
    """(line or row number from 1, the text or why there is none) for each record."""
    read = _table_texts if path.suffix in (".parquet", ".arrow") else _json_texts
    try:
        yield from read(path, text_key, on_bytes)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise PrepareError(f"{path}: corrupt gzip ({err or type(err).__name__})") from None
    except OSError as err:
        if path.suffix == ".zst" and err.errno is None:  # pyarrow's decompression errors carry no errno
            raise PrepareError(f"{path}: corrupt zstd ({err})") from None
        raise PrepareError(f"cannot read {path}: {err.strerror or err}") from None


def _json_texts(path: Path, text_key: str, on_bytes) -> Iterator[tuple[int, Union[str, Skipped]]]:
    with open(path, "rb") as raw:
        if path.suffix == ".gz":
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        elif path.suffix == ".zst":  # any number of frames; a file ending inside one is an error
            import pyarrow as pa

            stream = io.BufferedReader(pa.CompressedInputStream(raw, "zstd"), buffer_size=1 << 20)
        else:
            stream = raw
        position = 0
        for number, line in enumerate(stream, start=1):
            if number % 4096 == 0:
                now = raw.tell()
                on_bytes(now - position)
                position = now
            if not line.strip():
                continue
            # orjson (3.8 at least) crashes the process on very deep nesting; the standard parser
            # stops such a line with a RecursionError. Lines with that many brackets are rare.
            careful = not _STDLIB_JSON and line.count(b"[") + line.count(b"{") > MANY_BRACKETS
            try:
                record = json.loads(line) if careful else _json_loads(line)
            except ValueError as err:  # JSON errors and undecodable bytes
                yield number, Skipped(f"malformed JSON ({first_line(err)})")
                continue
            except RecursionError:  # the stdlib parser on deeply nested brackets
                yield number, Skipped("malformed JSON (nested too deeply)")
                continue
            yield number, _text_of(record, text_key, check_unicode=_STDLIB_JSON or careful)
        on_bytes(raw.tell() - position)


def _text_of(record, text_key: str, check_unicode: bool) -> Union[str, Skipped]:
    if not isinstance(record, dict):
        return Skipped(f"a JSON {type(record).__name__}, not an object")
    if text_key not in record:
        return Skipped(f"no {text_key!r} field")
    text = record[text_key]
    if not isinstance(text, str):
        return Skipped(f"{text_key!r} is {'null' if text is None else 'a ' + type(text).__name__}, not a string")
    if check_unicode and _SURROGATE.search(text):
        return Skipped(f"{text_key!r} holds an unpaired surrogate escape, not Unicode text")
    return text


def _table_texts(path: Path, text_key: str, on_bytes):
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    parquet, per_row = path.suffix == ".parquet", 0.0
    try:
        if parquet:
            reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
            schema = reader.schema_arrow
            batches = reader.iter_batches(batch_size=BATCH_ROWS, use_threads=False,
                                          columns=[text_key] if text_key in schema.names else None)
            per_row = path.stat().st_size / max(reader.metadata.num_rows, 1)  # progress in the file's own bytes
        else:
            try:
                batches = ipc.open_stream(pa.OSFile(str(path)))  # what datasets writes
                schema = batches.schema
            except pa.ArrowInvalid:
                file_reader = ipc.open_file(pa.OSFile(str(path)))
                batches = (file_reader.get_batch(i) for i in range(file_reader.num_record_batches))
                schema = file_reader.schema
        if text_key not in schema.names:
            raise PrepareError(f"{path}: no {text_key!r} column (columns: {', '.join(schema.names[:8])}); "
                               "choose one with --text_key")
        kind = schema.field(text_key).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise PrepareError(f"{path}: column {text_key!r} holds {kind}, not strings")
        row = 0
        for batch in _guarded(batches, path):
            column = batch.column(batch.schema.get_field_index(text_key))
            for text in column.to_pylist():
                row += 1
                yield row, (text if isinstance(text, str) else Skipped(f"{text_key!r} is null, not a string"))
            on_bytes(int(batch.num_rows * per_row) if per_row else column.nbytes)
    except (pa.ArrowException, ValueError) as err:
        raise PrepareError(f"{path}: unreadable {'Parquet' if parquet else 'Arrow file'} ({first_line(err)})") from None


def _guarded(batches, path: Path):
    """The batches, an error while reading one naming the file and the rows read before it."""
    import pyarrow as pa

    rows = 0
    try:  # the consumer's own errors never reach this generator: only reading a batch is guarded
        for batch in batches:
            rows += batch.num_rows
            yield batch
    except (pa.ArrowException, OSError, ValueError) as err:
        raise PrepareError(f"{path}: unreadable after row {rows} ({first_line(err)})") from None
