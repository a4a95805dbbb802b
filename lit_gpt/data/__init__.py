"""Packed token chunks: the trainer reads them through `batches.py`; `lit_gpt.compat.packed_dataset` keeps
TinyLlama's classes for scripts written against TinyLlama."""

from lit_gpt.data.format import (
    HEADER_SIZE,
    MAGIC,
    VERSION,
    PackedDatasetError,
    find_chunk_files,
    read_header,
    token_dtype,
    write_chunk,
)
from lit_gpt.data.mixing import MixedStream
from lit_gpt.data.reader import PackedStream
from lit_gpt.data.writer import ChunkWriter

__all__ = [
    "HEADER_SIZE", "MAGIC", "VERSION", "ChunkWriter", "MixedStream", "PackedDatasetError", "PackedStream",
    "find_chunk_files", "read_header", "token_dtype", "write_chunk",
]
