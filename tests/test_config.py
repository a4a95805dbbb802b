from dataclasses import asdict

import pytest

from lit_gpt.config import Config, name_to_config


@pytest.mark.parametrize("name", sorted(name_to_config))
def test_every_registered_config_round_trips(name):
    config = Config.from_name(name)
    assert Config(**asdict(config)) == config
    assert Config.from_dict(config.to_dict()) == config


def test_spec_shapes():
    c = Config.from_name("tiny_LLaMA_1b_mask")
    assert (c.n_layer, c.n_embd, c.n_head, c.n_query_groups, c.intermediate_size) == (24, 2048, 32, 2, 5632)
    assert (c.block_size, c.padded_vocab_size, c.head_size, c.norm_eps, c.rope_base) == (4096, 32064, 64, 1e-5, 10000)
    t = Config.from_name("tiny_LLaMA_1b")
    assert (t.n_layer, t.n_query_groups, t.block_size, t.padded_vocab_size) == (22, 4, 2048, 32000)


def test_unknown_name_lists_close_names():
    with pytest.raises(ValueError) as err:
        Config.from_name("tiny_LLaMA_1b_msk")
    assert "tiny_LLaMA_1b_mask" in str(err.value)


def test_overrides_recompute_derived_fields():
    c = Config.from_name("tiny_LLaMA_0.1b_mask", vocab_size=4000, block_size=256)
    assert c.padded_vocab_size == 4032 and c.block_size == 256


def test_invalid_shapes_are_rejected():
    with pytest.raises(ValueError, match="n_query_groups"):
        Config(n_embd=64, n_head=4, n_query_groups=3)
    with pytest.raises(ValueError, match="divisible"):
        Config(n_embd=66, n_head=4)
    with pytest.raises(ValueError, match="rotary_percentage"):
        Config(n_embd=64, n_head=4, rotary_percentage=0.25)


def test_upstream_config_dict_with_kernel_keys_loads():
    upstream = dict(
        name="tiny_LLaMA_1b", block_size=2048, vocab_size=32000, padding_multiple=64, n_layer=22, n_head=32,
        n_embd=2048, rotary_percentage=1.0, parallel_residual=False, bias=False, _norm_class="FusedRMSNorm",
        norm_eps=1e-5, _mlp_class="LLaMAMLP", intermediate_size=5632, n_query_groups=4,
    )
    assert Config.from_dict(upstream) == Config.from_name("tiny_LLaMA_1b")
    with pytest.raises(ValueError, match="_mlp_class"):
        Config.from_dict({**upstream, "_mlp_class": "GptNeoxMLP"})
    with pytest.raises(ValueError, match="unknown config key"):
        Config.from_dict({**upstream, "flux_capacitor": 1})


# Copied from upstream MEAP-Pretain/lit_gpt/config.py (scitix/MEAP): the fields a user compares.
# Upstream's __post_init__ sets padded_vocab_size = vocab_size.
UPSTREAM_SHAPES = {
    "tiny_LLaMA_0.1b_mask": dict(block_size=4096, vocab_size=32064, padding_multiple=64, n_layer=12, n_head=12,
                                 n_embd=768, norm_eps=1e-5, intermediate_size=2048, n_query_groups=2),
    "tiny_LLaMA_300M_mask": dict(block_size=4096, vocab_size=32064, padding_multiple=64, n_layer=24, n_head=16,
                                 n_embd=1024, norm_eps=1e-5, intermediate_size=2736, n_query_groups=2),
    "tiny_LLaMA_0.5b_mask": dict(block_size=4096, vocab_size=32064, padding_multiple=64, n_layer=24, n_head=16,
                                 n_embd=1024, norm_eps=1e-5, intermediate_size=4864, n_query_groups=2),
    "tiny_LLaMA_1b_mask": dict(block_size=4096, vocab_size=32064, padding_multiple=64, n_layer=24, n_head=32,
                               n_embd=2048, norm_eps=1e-5, intermediate_size=5632, n_query_groups=2),
    "tiny_LLaMA_1b": dict(block_size=2048, vocab_size=32000, padding_multiple=64, n_layer=22, n_head=32,
                          n_embd=2048, norm_eps=1e-5, intermediate_size=5632, n_query_groups=4),
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_SHAPES))
def test_upstream_names_have_upstream_field_values(name):
    config = Config.from_name(name)
    for field, value in UPSTREAM_SHAPES[name].items():
        assert getattr(config, field) == value, (name, field)
    assert config.padded_vocab_size == UPSTREAM_SHAPES[name]["vocab_size"]
