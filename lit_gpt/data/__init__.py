"""Packed token chunks: the file format, the writer, the position-addressed reader, the mix, and
the trainer's batches.

    format.py   header, dtype codes, reading/writing one chunk file, finding a prefix's files
    writer.py   ChunkWriter: a token stream -> chunk files of a fixed size
    stream.py   ResumableStream: iteration by position, the resume state and its checks
    reader.py   PackedStream: chunk files -> blocks of block_size + 1 tokens, shuffled by (seed, epoch)
    mixing.py   MixedStream: several streams mixed by weight, resumable
    batches.py  the trainer's training/validation batches, read by position from one stream

The trainer reads through `batches.py`, which opens these streams. `lit_gpt.compat.packed_dataset`
keeps TinyLlama's classes, with their signatures and behaviour, for scripts written against TinyLlama.
"""

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
