"""Model loading: a lit checkpoint as the Hugging Face model it converts from; no progress bar."""

import json

import pytest
import torch


def test_lit_checkpoint_loads_as_the_same_model(model_dir, tmp_path):
    convert = pytest.importorskip("lit_gpt.convert.hf")
    if not all(hasattr(convert, n) for n in ("hf_to_lit_state_dict", "config_from_hf", "lit_to_hf_state_dict")):
        pytest.skip("lit_gpt.convert.hf lacks the conversion functions")
    from safetensors.torch import load_file
    from transformers import LlamaForCausalLM

    from lit_gpt.eval.models import load_model

    hf_config = json.loads((model_dir / "config.json").read_text())
    config = convert.config_from_hf(hf_config, name="tiny")
    lit_sd = convert.hf_to_lit_state_dict(load_file(model_dir / "model.safetensors"), config)
    ckpt = tmp_path / "iter-000010-ckpt.pth"
    torch.save({"model": lit_sd, "config": config.to_dict()}, ckpt)

    loaded = load_model(ckpt, tokenizer_dir=model_dir, device="cpu", dtype="float32")
    assert loaded.source == "lit"
    reference = LlamaForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.randint(0, hf_config["vocab_size"], (2, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, reference(ids).logits, rtol=1e-5, atol=1e-5)


def test_loading_a_model_prints_no_progress_bar(model_dir, capfd):
    """transformers' "Loading weights" bar is off for our loads, and the user's setting is restored."""
    from transformers.utils import logging as hf_logging

    from lit_gpt.eval.models import load_hf_folder

    hf_logging.enable_progress_bar()  # the user's setting; another test may have turned it off
    capfd.readouterr()
    load_hf_folder(model_dir, torch.float32)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
