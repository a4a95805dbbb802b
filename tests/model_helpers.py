"""A tiny model configuration shared by the model and generation tests."""

from lit_gpt.config import Config


def tiny_config(**overrides) -> Config:
    base = dict(name="test", block_size=32, vocab_size=97, padding_multiple=16, n_layer=2, n_embd=32, n_head=4, n_query_groups=2, intermediate_size=48)
    return Config(**{**base, **overrides})
