"""The `LITPKDS` chunk file format of lit-gpt / TinyLlama: header, dtype codes, one file in, one out.

A chunk file is a 24-byte little-endian header (7 bytes magic `LITPKDS`, uint64 version 1, uint8
dtype code, uint64 chunk_size) followed by exactly chunk_size tokens. Files written by upstream
lit-gpt / TinyLlama read unchanged, and the files written here read in upstream code.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_gpt.errors import UserError
from lit_gpt.io.atomic import PathLike, open_atomic

MAGIC = b"LITPKDS"
VERSION = 1
HEADER = struct.Struct("<7sQBQ")  # magic, version, dtype code, chunk_size
HEADER_SIZE = HEADER.size  # 24
DTYPES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float32,
    7: np.float64,
    8: np.uint16,
}


class PackedDatasetError(UserError):
    """A chunk file or a data folder that cannot be read; the message names it."""


def dtype_code(dtype) -> int:
    codes = {np.dtype(candidate): code for code, candidate in DTYPES.items()}
    if np.dtype(dtype) not in codes:
        raise ValueError(f"dtype {np.dtype(dtype)} has no code in the packed format")
    return codes[np.dtype(dtype)]


def token_dtype(vocab_size: int) -> type:
    """uint16 below 65500 tokens (the upstream rule, which leaves room for added tokens), else int32."""
    return np.uint16 if vocab_size < 65500 else np.int32


@dataclass(frozen=True)
class ChunkHeader:
    path: str
    dtype: type
    chunk_size: int


def read_header(path: PathLike) -> ChunkHeader:
    """Reads and checks a chunk file's header and its size; errors name the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_SIZE)
    except OSError as err:
        raise PackedDatasetError(f"cannot read chunk file {path}: {err.strerror or err}") from None
    if len(raw) < HEADER_SIZE:
        raise PackedDatasetError(f"{path} is not a packed chunk file: {size} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, code, chunk_size = HEADER.unpack(raw)
    if magic != MAGIC:
        raise PackedDatasetError(f"{path} is not a packed chunk file: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PackedDatasetError(f"{path} has format version {version}; only version {VERSION} is known")
    if code not in DTYPES:
        raise PackedDatasetError(f"{path} has unknown dtype code {code}; known codes are {sorted(DTYPES)}")
    dtype = DTYPES[code]
    if not np.issubdtype(dtype, np.integer):  # codes 6/7 are in TinyLlama's table, but token ids are integers
        raise PackedDatasetError(f"{path} holds {np.dtype(dtype).name} values (dtype code {code}), not integer token ids")
    expected = HEADER_SIZE + chunk_size * np.dtype(dtype).itemsize
    if size != expected:
        raise PackedDatasetError(
            f"{path} is {size} bytes but its header announces {chunk_size} {np.dtype(dtype).name} tokens "
            f"({expected} bytes): truncated or corrupt"
        )
    return ChunkHeader(str(path), dtype, chunk_size)


def write_chunk(path: PathLike, tokens: np.ndarray) -> Path:
    """Writes one chunk file all or nothing (lit_gpt.io.atomic): the temporary name starts with a
    dot, so a crash leaves nothing that a prefix glob picks up and nothing that looks whole."""
    path = Path(path)
    tokens = np.ascontiguousarray(tokens)
    header = HEADER.pack(MAGIC, VERSION, dtype_code(tokens.dtype), tokens.size)
    with open_atomic(path, "wb", "chunk") as f:
        f.write(header)
        f.write(tokens.tobytes())
    return path


def find_chunk_files(data_dir: PathLike, prefix: str) -> list[Path]:
    """The chunk files `{prefix}*.bin` in `data_dir`, sorted; the upstream loader's prefixes are
    `c4` (train) and `validation`."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise PackedDatasetError(f"data directory not found: {data_dir}")
    files = sorted(p for p in data_dir.glob(f"{prefix}*.bin") if p.is_file())
    if not files:
        raise PackedDatasetError(f"no chunk files {prefix}*.bin in {data_dir}")
    return files
