"""What a run logs (lit_gpt/pretrain/metrics.py): the loggers against metrics.csv."""

import math

import pytest

from tests.pretrain_helpers import train_losses
from tests.pretrain.helpers import run


pytestmark = pytest.mark.usefixtures("one_thread")


def test_tensorboard_logger_writes_the_same_values_as_metrics_csv(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert run(data, out, max_steps=6, log_interval=2, eval_interval=3, logger="tensorboard") == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    logged = {(e.step, e.value) for e in events.Scalars("loss")}
    expected = {(step, float(loss)) for step, loss in train_losses(out).items()}
    assert len(expected) == 3 and {s for s, _ in logged} == {s for s, _ in expected}
    for (step, value), (_, want) in zip(sorted(logged), sorted(expected)):
        assert math.isclose(value, want, rel_tol=1e-5), (step, value, want)
    assert sorted(e.step for e in events.Scalars("val_loss")) == [3, 6]
