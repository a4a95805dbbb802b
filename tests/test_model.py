import math

import pytest
import torch

from lit_gpt.config import Config
from lit_gpt.model import GPT, CausalSelfAttention, count_parameters, flops_per_token
from tests.model_helpers import tiny_config


def naive_rope(x: torch.Tensor, base: int) -> torch.Tensor:
    """Rotation of pairs (i, i + hs/2) by angle pos * base^(-2i/hs), written with complex numbers."""
    T, hs = x.shape[-2], x.shape[-1]
    half = hs // 2
    out = torch.empty_like(x, dtype=torch.float64)
    for pos in range(T):
        for i in range(half):
            angle = pos * base ** (-2 * i / hs)
            z = complex(1, 0) * math.cos(angle) + 1j * math.sin(angle)
            pair = x[..., pos, i].double() + 1j * x[..., pos, i + half].double()
            rotated = pair * z
            out[..., pos, i] = rotated.real
            out[..., pos, i + half] = rotated.imag
    return out


def naive_attention(attn: CausalSelfAttention, x: torch.Tensor, config: Config) -> torch.Tensor:
    """Per-head attention in float64 with explicit loops over heads and the lit_gpt qkv layout."""
    B, T, _ = x.shape
    hs, qpk = config.head_size, config.q_per_kv
    W = attn.attn.weight.double()
    rows_per_group = (qpk + 2) * hs
    outputs = []
    for head in range(config.n_head):
        group, within = divmod(head, qpk)
        g0 = group * rows_per_group
        Wq = W[g0 + within * hs : g0 + (within + 1) * hs]
        Wk = W[g0 + qpk * hs : g0 + (qpk + 1) * hs]
        Wv = W[g0 + (qpk + 1) * hs : g0 + (qpk + 2) * hs]
        q = naive_rope(x.double() @ Wq.T, config.rope_base)
        k = naive_rope(x.double() @ Wk.T, config.rope_base)
        v = x.double() @ Wv.T
        scores = q @ k.transpose(-1, -2) / math.sqrt(hs)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        outputs.append(torch.softmax(scores, dim=-1) @ v)
    y = torch.cat(outputs, dim=-1)
    return y @ attn.proj.weight.double().T


@pytest.mark.parametrize("n_head,n_query_groups", [(4, 4), (4, 2), (4, 1)], ids=["MHA", "GQA", "MQA"])
def test_attention_matches_naive_reference(n_head, n_query_groups):
    torch.manual_seed(0)
    config = tiny_config(n_head=n_head, n_query_groups=n_query_groups)
    model = GPT(config)
    attn = model.transformer.h[0].attn
    x = torch.randn(2, 9, config.n_embd)
    cos, sin = model.rope_cache(9, x.device)
    ours = attn(x, cos[:9], sin[:9])
    expected = naive_attention(attn, x, config)
    torch.testing.assert_close(ours.double(), expected, atol=1e-5, rtol=1e-5)


def test_causality():
    torch.manual_seed(0)
    model = GPT(tiny_config()).eval()
    idx = torch.randint(0, 97, (1, 20))
    changed = idx.clone()
    changed[0, 12] = (idx[0, 12] + 1) % 97
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[0, :12], b[0, :12])
    assert not torch.allclose(a[0, 12:], b[0, 12:])


def test_logits_shape_and_padded_vocab():
    config = tiny_config()
    assert config.padded_vocab_size == 112
    logits = GPT(config)(torch.zeros(3, 5, dtype=torch.long))
    assert logits.shape == (3, 5, 112)


def test_forward_with_targets_equals_cross_entropy_of_logits():
    torch.manual_seed(0)
    model = GPT(tiny_config())
    idx = torch.randint(0, 97, (2, 16))
    targets = torch.randint(0, 97, (2, 16))
    targets[0, :4] = -100
    loss = model(idx, targets=targets)
    logits = model(idx)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, expected)


def test_kv_cache_decoding_equals_full_forward():
    torch.manual_seed(0)
    model = GPT(tiny_config()).eval()
    idx = torch.randint(0, 97, (2, 14))
    with torch.no_grad():
        full = model(idx)
        model.set_kv_cache(batch_size=2, max_seq_length=20)
        prefill = model(idx[:, :6], input_pos=torch.arange(6))
        steps = [model(idx[:, t : t + 1], input_pos=torch.tensor([t])) for t in range(6, 14)]
        model.clear_kv_cache()
    incremental = torch.cat([prefill] + steps, dim=1)
    torch.testing.assert_close(incremental, full, atol=1e-5, rtol=1e-5)


# SPEC.md §2: 122M, 324M, 481M, 1.18B.
@pytest.mark.parametrize(
    "name,expected",
    [("tiny_LLaMA_0.1b_mask", 122e6), ("tiny_LLaMA_300M_mask", 324e6), ("tiny_LLaMA_0.5b_mask", 481e6), ("tiny_LLaMA_1b_mask", 1.18e9)],
)
def test_meap_shapes_parameter_counts(name, expected):
    config = Config.from_name(name)
    assert config.padded_vocab_size == 32064
    with torch.device("meta"):
        model = GPT(config)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - expected) / expected < 0.01
    assert count_parameters(config) == n


def test_flops_per_token_formula():
    config = Config.from_name("tiny_LLaMA_1b")
    n = count_parameters(config)
    assert flops_per_token(config, 2048) == 6 * n + 12 * 22 * 2048 * 2048


def test_init_scales_output_projections_with_depth():
    torch.manual_seed(0)
    config = tiny_config(n_embd=256, n_head=4, n_query_groups=2, intermediate_size=512, n_layer=4)
    model = GPT(config)
    block = model.transformer.h[0]
    small = 1 / math.sqrt(256) / 4
    assert abs(block.attn.proj.weight.std().item() - small) / small < 0.1
    assert abs(block.mlp.swiglu.w3.weight.std().item() - small) / small < 0.1
    normal = math.sqrt(2 / 5 / 256)
    assert abs(block.attn.attn.weight.std().item() - normal) / normal < 0.1


def test_parameter_names_follow_tinyllama():
    names = set(GPT(tiny_config(n_layer=1)).state_dict())
    assert names == {
        "lm_head.weight", "transformer.wte.weight", "transformer.ln_f.weight",
        "transformer.h.0.norm_1.weight", "transformer.h.0.attn.attn.weight", "transformer.h.0.attn.proj.weight",
        "transformer.h.0.norm_2.weight", "transformer.h.0.mlp.swiglu.w1.weight",
        "transformer.h.0.mlp.swiglu.w2.weight", "transformer.h.0.mlp.swiglu.w3.weight",
    }


def test_fused_flag_does_not_change_parameters_or_cpu_outputs():
    torch.manual_seed(0)
    fused = GPT(tiny_config(), fused=True)
    plain = GPT(tiny_config(), fused=False)
    plain.load_state_dict(fused.state_dict())
    idx = torch.randint(0, 97, (2, 8))
    torch.testing.assert_close(fused(idx), plain(idx))


def test_sequence_longer_than_block_size_is_refused():
    model = GPT(tiny_config(block_size=8))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
