"""The packed chunk format (lit_gpt/data/format.py): the bytes, header checks, finding the files."""

import numpy as np
import pytest

from lit_gpt.errors import UserError
from lit_gpt.data import PackedDatasetError, PackedStream, find_chunk_files, read_header, write_chunk
from tests.data.helpers import hand_written_chunk


def test_writer_produces_the_documented_bytes(tmp_path):
    tokens = np.array([1, 2, 3, 65000, 7], dtype=np.uint16)
    write_chunk(tmp_path / "ours.bin", tokens)
    hand_written_chunk(tmp_path / "reference.bin", tokens)
    assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "reference.bin").read_bytes()
    assert len((tmp_path / "ours.bin").read_bytes()) == 24 + 2 * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.bin", "reference.bin"]  # no temporary left


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(magic=b"NOTPKDS"), "magic"),
        (dict(version=2), "version 2"),
        (dict(code=9), "dtype code 9"),
    ],
)
def test_bad_headers_raise_naming_the_file(tmp_path, kwargs, message):
    path = hand_written_chunk(tmp_path / "bad.bin", range(16), **kwargs)
    with pytest.raises(PackedDatasetError, match=message) as err:
        PackedStream([path], block_size=3)
    assert str(path) in str(err.value)
    assert isinstance(err.value, UserError)


@pytest.mark.parametrize("code, dtype, name", [(6, "<f4", "float32"), (7, "<f8", "float64")])
def test_a_float_chunk_is_refused_naming_the_file(tmp_path, code, dtype, name):
    """Codes 6 and 7 are in the header's table, but floats are not token ids: never trained on."""
    path = hand_written_chunk(tmp_path / "c4_0000000000.bin", [1.5] * 16, code=code, dtype=dtype)
    with pytest.raises(PackedDatasetError, match=rf"holds {name} values \(dtype code {code}\)") as err:
        PackedStream([path], block_size=3)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_and_tiny_files_raise_naming_the_file(tmp_path):
    path = hand_written_chunk(tmp_path / "cut.bin", range(16))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(PackedDatasetError, match="truncated") as err:
        read_header(path)
    assert str(path) in str(err.value)
    (tmp_path / "tiny.bin").write_bytes(b"LITP")
    with pytest.raises(PackedDatasetError, match="tiny.bin"):
        read_header(tmp_path / "tiny.bin")


def test_find_chunk_files(tmp_path, chunk_files):
    hand_written_chunk(tmp_path / "validation_0000000000.bin", range(8))
    (tmp_path / ".c4_0000000009.bin.tmp").write_bytes(b"partial")
    assert find_chunk_files(tmp_path, "c4") == chunk_files
    assert [p.name for p in find_chunk_files(tmp_path, "validation")] == ["validation_0000000000.bin"]
    with pytest.raises(PackedDatasetError, match=str(tmp_path)):
        find_chunk_files(tmp_path, "wiki")
