"""Plain helpers shared by the pretraining tests: an in-process run and the shell entry point."""

import importlib.util

from lit_gpt.pretrain import PretrainArgs, pretrain
from tests.pretrain_helpers import REPO, tiny_settings


def run(data, out_dir, **changes) -> int:
    corpus, tokenizer = data
    return pretrain(PretrainArgs(**tiny_settings(corpus, tokenizer, out_dir, **changes)))


def _entry():
    spec = importlib.util.spec_from_file_location("pretrain_entry", REPO / "MEAP-Pretrain" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
