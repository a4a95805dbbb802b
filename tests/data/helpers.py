"""Plain helpers shared by the data tests: chunk files written byte by byte, blocks read without the reader."""

import struct
from pathlib import Path

import numpy as np


def hand_written_chunk(path: Path, tokens, code: int = 8, dtype="<u2", version: int = 1, magic=b"LITPKDS") -> Path:
    """The format spelled out byte by byte, independent of the code under test."""
    tokens = np.asarray(tokens, dtype=dtype)
    path.write_bytes(magic + struct.pack("<Q", version) + bytes([code]) + struct.pack("<Q", tokens.size) + tokens.tobytes())
    return path


def naive_blocks(paths, block_size):
    """Every full block of every file, read without the reader: tuples of ints."""
    blocks = []
    for path in paths:
        raw = Path(path).read_bytes()
        code, chunk_size = raw[15], struct.unpack("<Q", raw[16:24])[0]
        dtype = {8: "<u2", 4: "<i4"}[code]
        tokens = np.frombuffer(raw[24:], dtype=dtype)
        assert tokens.size == chunk_size
        n = block_size + 1
        blocks += [tuple(int(t) for t in tokens[i * n : (i + 1) * n]) for i in range(chunk_size // n)]
    return blocks


def rows(samples):
    return [tuple(int(t) for t in sample) for sample in samples]
