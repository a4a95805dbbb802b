"""compile_blocks: in place, names unchanged, one graph for all blocks, same numbers as eager."""

from __future__ import annotations

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


def test_keeping_the_blocks_kernel_choice():
    torch._dynamo.reset()
    model = GPT(Config.from_name("micro_LLaMA", n_layer=1, vocab_size=64), fused=True)
    compile_blocks(model, reference_kernels=False, backend="eager")
    assert all(m.fused for m in model.transformer.h[0].modules() if hasattr(m, "fused"))


def test_rejects_a_model_without_blocks():
    with pytest.raises(TypeError, match="transformer.h"):
        compile_blocks(torch.nn.Linear(2, 2))
