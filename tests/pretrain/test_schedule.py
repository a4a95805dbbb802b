"""The learning-rate schedule (lit_gpt/pretrain/schedule.py)."""

import pytest


pytestmark = pytest.mark.usefixtures("one_thread")


def test_lr_schedule_warms_up_linearly_then_cosine_decays_to_min_lr():
    from lit_gpt.pretrain.schedule import get_lr, warmup_steps_for

    total, warmup = 1000, warmup_steps_for(1000, 0.1)
    assert warmup == 100
    lrs = [get_lr(s, max_lr=4e-4, min_lr=4e-5, warmup_steps=warmup, total_steps=total) for s in range(total)]
    assert lrs[0] == pytest.approx(4e-6) and lrs[49] == pytest.approx(2e-4) and lrs[99] == pytest.approx(4e-4)
    assert lrs[-1] == pytest.approx(4e-5)
    middle = warmup + (total - warmup - 1) / 2  # half way through the cosine: half way between max and min
    assert get_lr(int(middle), max_lr=4e-4, min_lr=4e-5, warmup_steps=warmup, total_steps=total) == pytest.approx(2.2e-4, rel=1e-2)
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :]))
