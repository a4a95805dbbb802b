import math
import random

import pytest
import torch

from lit_gpt.meap import MEAPCollator, mask_inputs, mask_seed, upstream_mask_positions

MASK = 999


def _tokens(batch, length, seed=0):
    # Token ids below MASK, so masked positions are exactly those equal to MASK.
    return torch.randint(0, MASK, (batch, length), generator=torch.Generator().manual_seed(seed))


def _runs(row):
    """Lengths of the maximal runs of True in a 1-D bool tensor."""
    lengths, current = [], 0
    for flag in row.tolist():
        if flag:
            current += 1
        elif current:
            lengths.append(current)
            current = 0
    if current:
        lengths.append(current)
    return lengths


@pytest.mark.parametrize("ratio,length", [(0.15, 64), (0.1, 30), (0.29, 100), (0.5, 7), (0.05, 19)])
def test_exact_count_per_row(ratio, length):
    x = _tokens(16, length)
    out = mask_inputs(x, ratio, MASK, torch.Generator().manual_seed(1))
    expected = int(round(ratio * 1_000_000) * length // 1_000_000)  # floor in exact integer arithmetic
    assert (out == MASK).sum(dim=1).tolist() == [expected] * 16
    # Unmasked positions keep their token.
    keep = out != MASK
    assert torch.equal(out[keep], x[keep])


def test_input_untouched_and_ratio_zero_identity():
    x = _tokens(4, 50)
    before = x.clone()
    out = mask_inputs(x, 0.2, MASK, torch.Generator().manual_seed(0))
    assert torch.equal(x, before)
    assert out.data_ptr() != x.data_ptr()
    same = mask_inputs(x, 0.0, MASK)
    assert torch.equal(same, x)
    # Ratio so small that floor(r*T) == 0: also unchanged.
    assert torch.equal(mask_inputs(x, 0.01, MASK), x)


def test_one_dimensional_input():
    x = _tokens(1, 40)[0]
    out = mask_inputs(x, 0.25, MASK, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and int((out == MASK).sum()) == 10


def test_positions_roughly_uniform():
    # 4000 rows of length 20 with 3 masked each: 600 expected hits per position.
    rows, length, n = 4000, 20, 3
    out = mask_inputs(_tokens(rows, length), n / length, MASK, torch.Generator().manual_seed(123))
    counts = (out == MASK).sum(dim=0).double()
    expected = rows * n / length
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 19 degrees of freedom: mean 19, P(chi2 > 60) is about 4e-6.
    assert chi2 < 60, (chi2, counts.tolist())


def test_rows_independent():
    rows, length, n = 400, 100, 10
    x = _tokens(rows, length)
    g = torch.Generator().manual_seed(5)
    masked = mask_inputs(x, n / length, MASK, g) == MASK
    # Two independent uniform 10-subsets of 100 overlap in n*n/T = 1 position on average.
    overlap = (masked[0::2] & masked[1::2]).sum(dim=1).double().mean().item()
    assert 0.7 < overlap < 1.3, overlap


@pytest.mark.parametrize("span,length,ratio", [(5, 200, 0.15), (50, 4096, 0.15), (5, 32, 0.15), (3, 10, 0.5)])
def test_spans_contiguous(span, length, ratio):
    x = _tokens(8, length)
    out = mask_inputs(x, ratio, MASK, torch.Generator().manual_seed(7), span=span)
    n = math.floor(round(ratio * length, 6))
    runs = max(1, round(n / span))
    for row in out == MASK:
        lengths = _runs(row)
        # Runs may touch, so every maximal run is a whole number of spans.
        assert all(run % span == 0 for run in lengths), lengths
        assert sum(lengths) == runs * span
        assert abs(sum(lengths) - n) <= span


def test_reproducible_from_seed_and_different_elsewhere():
    x = _tokens(4, 128)
    collate = MEAPCollator(mask_ratio=0.15, mask_token_id=MASK, seed=42)
    block = torch.cat([x, x[:, :1]], dim=1)
    a, _ = collate(block, step=3, micro_step=1, rank=0, world_size=2)
    b, _ = collate(block, step=3, micro_step=1, rank=0, world_size=2)
    assert torch.equal(a, b)
    others = [
        collate(block, step=4, micro_step=1, rank=0, world_size=2)[0],
        collate(block, step=3, micro_step=0, rank=0, world_size=2)[0],
        collate(block, step=3, micro_step=1, rank=1, world_size=2)[0],
        MEAPCollator(mask_ratio=0.15, mask_token_id=MASK, seed=43)(block, 3, 1, 0, 2)[0],
    ]
    for other in others:
        assert not torch.equal(a == MASK, other == MASK)


def test_seed_depends_on_global_micro_batch_index():
    # Micro-step 1 of rank 0 among 2 processes is the same slice of the global batch as
    # micro-step 2 of a single process, so it gets the same seed.
    assert mask_seed(1, 10, 1, rank=0, world_size=2) == mask_seed(1, 10, 2, rank=0, world_size=1)
    assert mask_seed(1, 10, 0, rank=1, world_size=2) == mask_seed(1, 10, 1, rank=0, world_size=1)
    seeds = {mask_seed(0, s, m, r, 4) for s in range(20) for m in range(8) for r in range(4)}
    assert len(seeds) == 20 * 8 * 4
    assert all(0 <= s < 2**63 for s in seeds)


def test_collator_splits_block_and_keeps_targets():
    blocks = [torch.arange(i * 100, i * 100 + 33) for i in range(3)]
    inputs, targets = MEAPCollator(mask_ratio=0.25, mask_token_id=MASK, seed=0)(blocks, 0, 0)
    stacked = torch.stack(blocks)
    assert inputs.shape == targets.shape == (3, 32)
    assert torch.equal(targets, stacked[:, 1:])
    assert ((inputs == MASK).sum(dim=1) == 8).all()
    keep = inputs != MASK
    assert torch.equal(inputs[keep], stacked[:, :-1][keep])
    ntp_inputs, ntp_targets = MEAPCollator(mask_ratio=0.0, mask_token_id=None)(blocks, 0, 0)
    assert torch.equal(ntp_inputs, stacked[:, :-1]) and torch.equal(ntp_targets, stacked[:, 1:])


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_mask_ratio(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        mask_inputs(_tokens(1, 10), ratio, MASK)
    with pytest.raises(ValueError, match="mask_ratio"):
        MEAPCollator(mask_ratio=ratio, mask_token_id=MASK)


def test_mask_needs_a_token_id():
    with pytest.raises(ValueError, match="mask token"):
        MEAPCollator(mask_ratio=0.1, mask_token_id=None)


# --- the upstream scheme, checked against a re-implementation of the upstream training loop


def _upstream_run(train_data, T, mask_ratio, accum, first_step=0):
    """The masked inputs of each micro batch as scitix/MEAP's pretraining loop makes them.

    Its loop, per micro batch: `random.seed(50 + step_count % 51)` on the global generator,
    `random.sample(range(0, T - 1), max(1, int(T * mask_ratio)))`, `input_ids[:, positions] = mask`;
    `step_count` counts optimizer steps and grows after every `accum` micro batches. Every rank
    runs the same loop with the same step_count.
    """
    saved = random.getstate()
    try:
        step_count, out = first_step, []
        for iter_num, micro in enumerate(train_data):
            input_ids = micro[:, 0:T].clone()
            random.seed(50 + step_count % 51)
            positions = random.sample(range(0, T - 1), max(1, int(T * mask_ratio)))
            input_ids[:, positions] = MASK
            out.append(input_ids)
            if (iter_num + 1) % accum == 0:
                step_count += 1
        return out
    finally:
        random.setstate(saved)


@pytest.mark.parametrize("T,ratio", [(64, 0.15), (100, 0.29), (33, 0.01), (4096, 0.1)])
def test_upstream_scheme_matches_the_upstream_loop(T, ratio):
    accum, world_size, steps, first_step = 3, 2, 4, 49  # crosses step 51, where the patterns repeat
    micro = [[_tokens(2, T + 1, seed=100 * s + m) for m in range(accum)] for s in range(steps)]
    expected = _upstream_run([b for step in micro for b in step], T, ratio, accum, first_step)
    collate = MEAPCollator(mask_ratio=ratio, mask_token_id=MASK, seed=1234, scheme="upstream")
    for s in range(steps):
        for m in range(accum):
            want = expected[s * accum + m]
            for rank in range(world_size):  # every rank masks the same positions
                inputs, targets = collate(micro[s][m], first_step + s, m, rank, world_size)
                assert torch.equal(inputs, want), (T, ratio, s, m, rank)
                assert torch.equal(targets, micro[s][m][:, 1:])


def test_upstream_scheme_private_generator_equals_reseeding_the_global_one():
    saved = random.getstate()
    try:
        for step in (0, 7, 50, 51, 123456):
            random.seed(50 + step % 51)
            assert upstream_mask_positions(4096, 0.15, step) == random.sample(range(0, 4095), 614)
        random.seed(99)
        before = random.getstate()
        MEAPCollator(mask_ratio=0.15, mask_token_id=MASK, scheme="upstream")(_tokens(2, 65), 3, 0)
        assert random.getstate() == before  # the global generator is left alone
    finally:
        random.setstate(saved)


def test_upstream_scheme_properties():
    T = 40
    patterns = {tuple(sorted(upstream_mask_positions(T, 0.1, s))) for s in range(200)}
    assert len(patterns) == 51  # one per value of 50 + step % 51
    assert upstream_mask_positions(T, 0.1, 0) == upstream_mask_positions(T, 0.1, 51)
    assert all(T - 1 not in p for p in patterns)  # the last input position is never masked
    assert all(len(p) == 4 for p in patterns)
    assert len(upstream_mask_positions(T, 0.001, 0)) == 1  # max(1, int(T * ratio))
    assert len(upstream_mask_positions(100, 0.29, 0)) == 28  # int(28.999999999999996)
    x = torch.stack([torch.arange(T + 1)] * 3)
    ntp, _ = MEAPCollator(mask_ratio=0.0, mask_token_id=None, scheme="upstream")(x, 5, 0)
    assert torch.equal(ntp, x[:, :-1])


def test_upstream_scheme_refuses_spans_and_unknown_schemes():
    with pytest.raises(ValueError, match="single tokens"):
        MEAPCollator(mask_ratio=0.15, mask_token_id=MASK, span=5, scheme="upstream")
    with pytest.raises(ValueError, match="per_sequence, upstream"):
        MEAPCollator(mask_ratio=0.15, mask_token_id=MASK, scheme="shared")
