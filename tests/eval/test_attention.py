"""Attention shares at the answer positions, checked against Hugging Face's eager attention weights."""

import json
import shutil

import pytest
import torch

from lit_gpt.config import Config
from lit_gpt.convert.hf import hf_config_dict, lit_to_hf_state_dict
from lit_gpt.eval import attention
from lit_gpt.model import GPT


def _lit_and_hf(seed: int = 0):
    """A random 2-layer lit GPT and the LlamaForCausalLM with the same weights (eager attention)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = Config.from_name("micro_LLaMA", n_layer=2, n_embd=32, n_head=4, n_query_groups=2, intermediate_size=64,
                              vocab_size=96, block_size=128)
    torch.manual_seed(seed)
    lit = GPT(config, fused=False).eval()
    # Larger query/key weights than the init's, so the attention is far from uniform.
    with torch.no_grad():
        for block in lit.transformer.h:
            block.attn.attn.weight.mul_(8.0)
    hf_config = LlamaConfig(**hf_config_dict(config), attn_implementation="eager")
    hf = LlamaForCausalLM(hf_config).eval()
    hf.load_state_dict(lit_to_hf_state_dict(lit.state_dict(), config))
    return lit, hf


def test_lit_and_hf_rows_equal_hf_eager_attention_weights():
    lit, hf = _lit_and_hf()
    ids = torch.randint(0, 96, (1, 40), generator=torch.Generator().manual_seed(1))
    positions = [30, 35, 39]
    with torch.no_grad():
        reference = hf(ids, output_attentions=True).attentions  # per layer (1, nh, T, T)
    expected = torch.stack([layer[0, :, positions] for layer in reference])  # (L, nh, Q, T)
    assert expected.std() > 0.02  # not uniform, so the comparison means something
    for model in (lit, hf):
        got = attention.answer_attention(model, ids[0].tolist(), positions)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-4)


def test_uniform_attention_gives_needle_length_over_visible_length():
    lit, _ = _lit_and_hf()
    c = lit.config
    with torch.no_grad():  # zero the query rows of the fused qkv weight: every score is 0
        for block in lit.transformer.h:
            w = block.attn.attn.weight.view(c.n_query_groups, c.q_per_kv + 2, c.head_size, c.n_embd)
            w[:, : c.q_per_kv] = 0
    ids = torch.randint(0, 96, (50,), generator=torch.Generator().manual_seed(2)).tolist()
    regions = attention.Regions(needle=(10, 17), question=(40, 45))
    positions = [44, 46, 49]
    shares = attention.region_shares(attention.answer_attention(lit, ids, positions), regions)
    for i, p in enumerate(positions):
        visible = p + 1
        assert torch.allclose(shares["needle"][:, i], torch.tensor(7 / visible), atol=1e-6)
        assert torch.allclose(shares["question"][:, i], torch.tensor(5 / visible), atol=1e-6)
        assert torch.allclose(shares["entropy"][:, i], torch.tensor(visible).log(), atol=1e-5)
    assert attention.uniform_needle_share(regions, positions) == pytest.approx([7 / (p + 1) for p in positions])


def test_shares_and_rest_sum_to_one_and_match_a_naive_sum():
    _, hf = _lit_and_hf(seed=3)
    ids = torch.randint(0, 96, (60,), generator=torch.Generator().manual_seed(4)).tolist()
    regions = attention.Regions(needle=(20, 28), question=(50, 57))
    positions = [56, 57, 58]
    probs = attention.answer_attention(hf, ids, positions)
    shares = attention.region_shares(probs, regions)
    total = shares["needle"] + shares["question"] + shares["rest"]
    torch.testing.assert_close(total, torch.ones_like(total))
    # Naive: head by head, position by position, over keys 0..p.
    L, H = probs.shape[:2]
    for layer in range(L):
        for i, p in enumerate(positions):
            rest = sum(float(probs[layer, h, i, j]) for h in range(H) for j in range(p + 1)
                       if not (20 <= j < 28 or 50 <= j < 57)) / H
            assert shares["rest"][layer, i].item() == pytest.approx(rest, abs=1e-5)
            assert float(probs[layer, :, i, p + 1 :].sum()) == 0.0


def test_cli_on_a_lit_checkpoint_and_its_hf_export_agree(tmp_path, llama_tokenizer_dir, capsys):
    """The CLI on a lit checkpoint (converted in memory, as retrieval does) and on its HF export: same shares."""
    from lit_gpt.convert.export import export_hf
    from lit_gpt.tokenizer import load_tokenizer, tokenizer_info

    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    shutil.copy(llama_tokenizer_dir / "tokenizer.model", tok_dir / "tokenizer.model")
    info = tokenizer_info(load_tokenizer(tok_dir), tok_dir)
    config = Config.from_name("micro_LLaMA", n_layer=2, n_embd=32, n_head=4, n_query_groups=2, intermediate_size=64,
                              vocab_size=info.vocab_size, block_size=256)
    torch.manual_seed(5)
    model = GPT(config, fused=False)
    ckpt = tmp_path / "step-00000001.pth"
    torch.save({"model": model.state_dict(), "config": config.to_dict(), "tokenizer_dir": str(tok_dir)}, ckpt)
    export_hf(ckpt, tmp_path / "hf", dtype="float32")

    common = ["--task", "passkey", "--context_lengths", "160", "--depths", "0,1", "--samples", "1", "--device", "cpu"]
    lit_results = attention.main(["--model_dir", str(ckpt), "--out_dir", str(tmp_path / "a_lit"), *common])
    hf_results = attention.main(["--model_dir", str(tmp_path / "hf"), "--out_dir", str(tmp_path / "a_hf"), *common])
    assert lit_results["settings"]["model_source"] == "lit" and hf_results["settings"]["model_source"] == "hf"
    for name in ("needle", "question", "rest", "entropy"):
        assert lit_results["summary"]["per_layer"][name] == pytest.approx(hf_results["summary"]["per_layer"][name], abs=1e-4)
    saved = json.loads((tmp_path / "a_lit" / "results.json").read_text())
    assert len(saved["records"]) == 2 and (tmp_path / "a_lit" / "attention.png").stat().st_size > 1000
    record = saved["records"][0]
    needle, question = record["needle_span"], record["question_span"]
    assert needle[0] < needle[1] <= question[0] < question[1] == record["prompt_tokens"]
    assert len(record["needle"]) == 2 and record["answer_positions"][0] == record["prompt_tokens"] - 1
    # An existing result is never replaced without --overwrite.
    with pytest.raises(SystemExit) as err:
        attention.main(["--model_dir", str(ckpt), "--out_dir", str(tmp_path / "a_lit"), *common])
    assert err.value.code != 0
    # Lengths beyond the model's 256 positions: refused before any prompt is built, nothing written; a
    # context of exactly 256 leaves no room for the answer the model reads after it: refused too.
    for model in (ckpt, tmp_path / "hf"):
        for length, what in (("100000", "--context_lengths: 100000 tokens"), ("256", "(prompt and answer)")):
            capsys.readouterr()
            with pytest.raises(SystemExit) as err:
                attention.main(["--model_dir", str(model), "--out_dir", str(tmp_path / "long"), *common[:2],
                                "--context_lengths", length, "--device", "cpu"])
            message = capsys.readouterr().err
            assert err.value.code == 2 and not (tmp_path / "long").exists()
            assert what in message and "exceed the model's 256 positions" in message, message
            assert "--allow_beyond_context" in message
