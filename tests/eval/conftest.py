"""Fixtures shared by the evaluation tests."""

import shutil

import pytest
import torch

from lit_gpt.tokenizer import load_tokenizer


# Session-scoped: test_retrieval.py, test_models.py and test_generation.py share it (built once per
# worker that needs it). test_multidoc_qa.py defines its own `model_dir`, which wins there.
@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, llama_tokenizer_dir):
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny_llama")
    shutil.copy(llama_tokenizer_dir / "tokenizer.model", folder / "tokenizer.model")
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
