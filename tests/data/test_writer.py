"""Packing token arrays into chunk files (lit_gpt/data/writer.py)."""

import numpy as np

from lit_gpt.data import ChunkWriter


def test_builder_packs_across_chunks_and_pads_the_last_with_the_separator(tmp_path):
    builder = ChunkWriter(tmp_path, "c4_doc", chunk_size=10, sep_token=2, dtype=np.uint16)
    pieces = [np.arange(100, 107), np.arange(200, 223), np.array([9])]
    for piece in pieces:
        builder.add_array(piece)
    assert builder.padding == 9
    files = builder.finish()
    assert [p.name for p in files] == [f"c4_doc_{i:010d}.bin" for i in range(4)]
    stream = np.concatenate([np.frombuffer(p.read_bytes()[24:], dtype="<u2") for p in files])
    expected = np.concatenate(pieces + [np.full(9, 2)])
    np.testing.assert_array_equal(stream, expected)
    assert all(p.read_bytes()[:7] == b"LITPKDS" and p.read_bytes()[15] == 8 for p in files)
