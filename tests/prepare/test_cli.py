"""`meap-prepare` / data_process/prepare_c4.py options (lit_gpt/prepare/cli.py)."""

from pathlib import Path

import numpy as np
import pytest

from lit_gpt.prepare.pipeline import DEFAULT_CHUNK_SIZE
from lit_gpt.prepare.token_encoding import make_encoder
from lit_gpt.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[2]


def test_command_line_defaults_and_help(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_c4", REPO / "data_process" / "prepare_c4.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert DEFAULT_CHUNK_SIZE == 4097 * 1024  # upstream's: block_size 4096 + 1, 1024 blocks per file
    args = script.parse_args(["--source_path", "s", "--destination_path", "d", "--tokenizer_dir", "t"])
    assert args.chunk_size == DEFAULT_CHUNK_SIZE and args.parse_special_tokens is False
    assert script.parse_args([*"--source_path s --destination_path d --tokenizer_dir t".split(),
                              "--parse_special_tokens"]).parse_special_tokens is True
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--parse_special_tokens" in help_text and "searched recursively" in help_text and "4097*1024" in help_text


def test_upstream_encoding_options(tmp_path, upstream_dir):
    from lit_gpt.prepare.cli import parse_args

    common = "--source_path s --destination_path d --tokenizer_dir t".split()
    assert parse_args([*common, "--encoding", "upstream"]).parse_special_tokens is True
    assert parse_args([*common, "--encoding", "upstream", "--no-parse_special_tokens"]).parse_special_tokens is False
    assert parse_args(common).parse_special_tokens is False and parse_args(common).encoding == "default"
    # A folder that already holds [MASK] would turn a literal "[MASK]" into the mask id: refused.
    folder = tmp_path / "with_mask"
    load_tokenizer(upstream_dir).save_pretrained(folder)
    from lit_gpt.tokenizer import TokenizerError

    with pytest.raises(TokenizerError, match=r"\[MASK\]"):
        make_encoder(load_tokenizer(folder), folder, np.uint16, parse_special_tokens=True, encoding="upstream")
