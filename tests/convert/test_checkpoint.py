"""The loader of lit checkpoints (lit_gpt/convert/checkpoint.py): upstream TinyLlama/MEAP checkpoints."""

import pytest
import torch

from lit_gpt.config import Config
from lit_gpt.convert.export import lit_to_hf
from tests.convert.helpers import random_lit_model, tokens

transformers = pytest.importorskip("transformers")


def test_upstream_checkpoint_with_wrapper_prefixes_and_hparams_converts(tmp_path):
    # TinyLlama/upstream MEAP checkpoints: Fabric-wrapped keys, no config, the model name in hparams.
    model = random_lit_model(Config.from_name("micro_LLaMA"), seed=9)
    upstream = {"model": {"_forward_module._orig_mod." + k: v for k, v in model.state_dict().items()},
                "optimizer": {}, "hparams": {"model_name": "micro_LLaMA", "learning_rate": 4e-4}, "iter_num": 5, "step_count": 1}
    torch.save(upstream, tmp_path / "iter-000005-ckpt.pth")
    hf, tokenizer = lit_to_hf(tmp_path / "iter-000005-ckpt.pth")
    assert tokenizer is None and hf.dtype == torch.float32 and hf.config.vocab_size == 4096
    idx = tokens(seed=3, vocab=4096)
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx), atol=1e-5, rtol=0)
    with pytest.raises(Exception, match="trained as 'micro_LLaMA', not --model_name 'pico_LLaMA'"):
        lit_to_hf(tmp_path / "iter-000005-ckpt.pth", model_name="pico_LLaMA")
