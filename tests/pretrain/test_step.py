"""One optimizer step (lit_gpt/pretrain/step.py): no host syncs but where the loop logs, validates or saves."""

import sys

import pytest

from tests.pretrain.helpers import run


pytestmark = pytest.mark.usefixtures("one_thread")


_HOST_SYNCS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy"}


@pytest.mark.parametrize("strategy", ["auto", "fsdp"])
def test_only_log_validation_and_save_steps_wait_for_the_device(strategy, data, tmp_path, monkeypatch):
    """Every read of a tensor's value on the host (what would wait for a GPU) is counted per step:
    steps that neither log, validate nor save have none; a log step has one (the packed reduction)."""
    from torch.overrides import TorchFunctionMode

    import lit_gpt.pretrain.train as train_module

    events: list[tuple[int, str]] = []
    steps_started = [0]
    real_step = train_module.train_step

    def counting_step(*args, **kwargs):
        steps_started[0] += 1
        return real_step(*args, **kwargs)

    class CountHostSyncs(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            # AdamW's CPU path reads its step counter, a host tensor (on a GPU the trainer uses fused
            # AdamW, whose counter stays on the device): not a wait for the device.
            caller = sys._getframe(1).f_code.co_filename
            if name in _HOST_SYNCS and steps_started[0] and "torch/optim" not in caller.replace("\\", "/"):
                events.append((steps_started[0], name))
            return func(*args, **(kwargs or {}))

    monkeypatch.setattr(train_module, "train_step", counting_step)
    with CountHostSyncs():
        assert run(data, tmp_path / "run", strategy=strategy, max_steps=8, log_interval=4, eval_interval=8,
                   save_interval=8) == 0
    per_step = {step: [name for s, name in events if s == step] for step in range(1, 9)}
    for step in (2, 3, 5, 6, 7):
        assert per_step[step] == [], (step, per_step[step])
    assert per_step[1] == ["tolist"] and per_step[4] == ["tolist"]  # the first step is reported at once
    assert per_step[8]  # log, validation and save
