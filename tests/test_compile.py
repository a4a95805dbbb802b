"""compile_blocks: in place, names unchanged, one graph for all blocks, same numbers as eager.

The last tests train through the real Inductor backend (C++ kernels built with the system
compiler), as `--compile true` does on a CPU machine.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from lit_gpt.compile import compile_blocks, is_compiled
from lit_gpt.config import Config
from lit_gpt.model import GPT


def test_compiled_blocks_match_eager_and_keep_names():
    torch._dynamo.reset()
    torch.manual_seed(0)
    config = Config.from_name("micro_LLaMA", n_layer=3, vocab_size=300)
    eager = GPT(config, fused=False)
    model = GPT(config, fused=True)
    model.load_state_dict(eager.state_dict())
    names = list(model.state_dict())
    counter = CompileCounterWithBackend("aot_eager")

    assert compile_blocks(model, backend=counter) is model
    assert list(model.state_dict()) == names  # no `_orig_mod.` prefixes: checkpoints unchanged
    assert all(is_compiled(block) for block in model.transformer.h)
    assert not is_compiled(model) and not is_compiled(model.lm_head)
    # Inside the compiled blocks the reference kernels run (Inductor fuses them itself) ...
    assert all(not m.fused for block in model.transformer.h for m in block.modules() if hasattr(m, "fused"))
    # ... while the loss keeps the model's own choice.
    assert model.fused

    x = torch.randint(0, 300, (2, 24))
    y = torch.randint(0, 300, (2, 24))
    loss = model(x, targets=y)
    ref = eager(x, targets=y)
    loss.backward()
    ref.backward()
    # Identical blocks share one traced graph.
    assert counter.frame_count == 1
    assert abs(loss.item() - ref.item()) < 1e-6
    for (name, p), q in zip(eager.named_parameters(), model.parameters()):
        assert torch.allclose(q.grad, p.grad, atol=1e-6, rtol=1e-5), name


def test_rejects_a_model_without_blocks():
    with pytest.raises(TypeError, match="transformer.h"):
        compile_blocks(torch.nn.Linear(2, 2))


# ----------------------------------------------------------------------------- Inductor, end to end
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from tests.pretrain_helpers import prepared_data

    return prepared_data(tmp_path_factory.mktemp("compile_data"))


def pretrain_cli(data, out_dir, *extra: str) -> dict[int, float]:
    """MEAP-Pretrain/pretrain.py with its command line; returns the logged loss per step."""
    from tests.pretrain_helpers import REPO, tiny_settings, to_argv, train_losses

    spec = importlib.util.spec_from_file_location("pretrain_entry", REPO / "MEAP-Pretrain" / "pretrain.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    corpus, tokenizer = data
    settings = tiny_settings(corpus, tokenizer, out_dir, max_steps=3, eval_iters=0, save_interval=100)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and Inductor's kernels follow it
    try:
        assert entry.main(to_argv(settings) + list(extra)) == 0
    finally:
        torch.set_num_threads(threads)
    return {step: float(loss) for step, loss in train_losses(out_dir).items()}


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "activation_checkpointing"])
def test_inductor_training_matches_eager(tiny_data, tmp_path, monkeypatch, checkpointing):
    from torch._dynamo.utils import counters

    from lit_gpt import compile as block_compile

    torch._dynamo.reset()
    counters.clear()
    compiled = []
    real = block_compile.compile_blocks

    def recording(model, **kwargs):
        real(model, **kwargs)
        compiled.append((list(model.transformer.h), kwargs))
        return model

    monkeypatch.setattr(block_compile, "compile_blocks", recording)
    flags = ["--activation_checkpointing", str(checkpointing).lower()]
    # One compile worker: a pool of them only competes for the cores of a small CI machine.
    # config.patch, not monkeypatch: a monkeypatched-then-restored attribute of this config module
    # was gone for the next test.
    with torch._inductor.config.patch(compile_threads=1):
        got = pretrain_cli(tiny_data, tmp_path / "compiled", "--compile", "true", *flags)
    expected = pretrain_cli(tiny_data, tmp_path / "eager", "--compile", "false", *flags)

    (blocks, kwargs), = compiled
    assert kwargs.get("backend", "inductor") == "inductor"  # the trainer's default: real Inductor
    assert len(blocks) == 2 and all(block_compile.is_compiled(block) for block in blocks)
    assert list(got) == list(expected) == [1, 2, 3]
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-5), step
    # Inductor really produced the graphs' code (built now or found in its on-disk cache).
    assert counters["inductor"]["fxgraph_cache_miss"] + counters["inductor"]["fxgraph_cache_hit"] >= 1
