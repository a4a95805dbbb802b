"""Unzipping .gz source files (lit_gpt/prepare/gunzip.py)."""

from lit_gpt.prepare.pipeline import gunzip_files
from tests.prepare.helpers import write_lines


def test_gunzip(tmp_path):
    write_lines(tmp_path / "in" / "c4-train.00000-of-00001.json.gz", ["a", "b"])
    out = gunzip_files(tmp_path / "in", tmp_path / "out")
    assert out == [tmp_path / "out" / "c4-train.00000-of-00001.json"]
    assert out[0].read_text() == "a\nb\n"
    assert gunzip_files(tmp_path / "in", tmp_path / "out") == []  # existing outputs are left alone
