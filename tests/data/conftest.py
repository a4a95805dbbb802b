"""Fixtures shared by the data tests: small chunk files whose every token is unique."""

import numpy as np
import pytest

from tests.data.helpers import hand_written_chunk


@pytest.fixture
def chunk_files(tmp_path):
    """Three files of unequal size whose every token is unique, so a block identifies itself."""
    sizes = [8 * 12, 8 * 5 + 3, 8 * 9]  # block_size 7 -> blocks of 8; the second has a 3-token tail
    paths, start = [], 1
    for i, size in enumerate(sizes):
        paths.append(hand_written_chunk(tmp_path / f"c4_{i:010d}.bin", np.arange(start, start + size)))
        start += size
    return paths


@pytest.fixture
def two_sources(tmp_path):
    a = [hand_written_chunk(tmp_path / f"a_{i}.bin", np.arange(1, 8 * 50 + 1) + 10_000 * i) for i in range(2)]
    b = [hand_written_chunk(tmp_path / "b_0.bin", np.arange(30_001, 30_001 + 8 * 40))]
    return a, b
