"""lit_gpt.sft.build_meap_example: the three modes, truncation, masks, determinism (SPEC §3)."""

import math

import pytest
import torch

from lit_gpt.sft import IGNORE_INDEX, build_meap_example, build_meap_example_from_segments

MASK, EOS = 99, 2
X = IGNORE_INDEX


def build(prompt, answer, mode, max_length=1000, mask_ratio=0.1, min_answer_tokens=50, seed=0, generator=None):
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    return build_meap_example(
        prompt, answer, mode=mode, mask_ratio=mask_ratio, mask_token_id=MASK, eos_token_id=EOS,
        max_length=max_length, min_answer_tokens=min_answer_tokens, generator=generator,
    )


def check_copy(copy_ids, copy_labels, source, answer_positions, mask_ratio):
    """The masked copy against the source sequence it copies (written out independently)."""
    assert len(copy_ids) == len(copy_labels) <= len(source)
    kept_answer = [p for p in answer_positions if p < len(copy_ids)]
    masked = [p for p, t in enumerate(copy_ids) if t == MASK]
    assert len(masked) == math.floor(mask_ratio * len(kept_answer) + 1e-9)
    assert set(masked) <= set(kept_answer)
    for p in range(len(copy_ids)):
        if p in masked:
            assert copy_labels[p] == source[p]
        else:
            assert copy_ids[p] == source[p]
            assert copy_labels[p] == X
    return masked


def test_ntp_labels_answer_and_eos_only():
    (example,) = build([10, 11, 12], [20, 21], "ntp")
    assert example == {"input_ids": [10, 11, 12, 20, 21, EOS], "labels": [X, X, X, 20, 21, EOS]}


def test_empty_prompt_and_empty_answer():
    (example,) = build([], [20, 21], "ntp")
    assert example == {"input_ids": [20, 21, EOS], "labels": [20, 21, EOS]}
    (example,) = build([10, 11], [], "concat", min_answer_tokens=0)
    assert example == {"input_ids": [10, 11, EOS], "labels": [X, X, EOS]}  # no answer token to mask


@pytest.mark.parametrize("n_answer", [50, 60, 73, 129])
def test_concat_appends_a_masked_copy(n_answer):
    prompt = list(range(100, 107))
    answer = list(range(1000, 1000 + n_answer))
    (example,) = build(prompt, answer, "concat")
    original = prompt + answer + [EOS]
    ids, labels = example["input_ids"], example["labels"]
    assert len(ids) == len(labels) == 2 * len(original)  # original + copy, each with its EOS
    assert ids[: len(original)] == original
    assert labels[: len(original)] == [X] * len(prompt) + answer + [EOS]
    answer_positions = range(len(prompt), len(prompt) + n_answer)
    masked = check_copy(ids[len(original):], labels[len(original):], original, answer_positions, 0.1)
    assert len(masked) == n_answer // 10
    assert ids[-1] == EOS and labels[-1] == X  # the copy's EOS carries no loss


def test_separate_gives_the_ntp_example_and_the_copy():
    prompt, answer = [5, 6, 7], list(range(200, 260))
    ntp, copy = build(prompt, answer, "separate", mask_ratio=0.2)
    assert ntp == build(prompt, answer, "ntp")[0]
    original = prompt + answer + [EOS]
    assert len(copy["input_ids"]) == len(original)
    masked = check_copy(copy["input_ids"], copy["labels"], original, range(3, 63), 0.2)
    assert len(masked) == 12


@pytest.mark.parametrize("mode", ["concat", "separate"])
def test_short_answers_get_no_copy(mode):
    prompt = [1, 5, 6]
    assert build(prompt, list(range(300, 349)), mode) == build(prompt, list(range(300, 349)), "ntp")
    with_copy = build(prompt, list(range(300, 350)), mode)
    assert MASK in [t for e in with_copy for t in e["input_ids"]]  # 50 tokens: the threshold is inclusive
    assert build(prompt, [7] * 60, mode, min_answer_tokens=61) == build(prompt, [7] * 60, "ntp")


def test_zero_ratio_is_plain_ntp():
    prompt, answer = [3, 4], list(range(10, 90))
    for mode in ("concat", "separate"):
        assert build(prompt, answer, mode, mask_ratio=0.0) == build(prompt, answer, "ntp")


def test_answer_at_the_length_limit():
    prompt, answer = [1, 2, 3], [7] * 10
    full = prompt + answer + [EOS]
    (example,) = build(prompt, answer, "ntp", max_length=len(full))
    assert example["input_ids"] == full and example["labels"][-1] == EOS
    # one token short: EOS is cut, every answer token still labeled, no EOS invented mid-answer
    (example,) = build(prompt, answer, "ntp", max_length=len(full) - 1)
    assert example["input_ids"] == prompt + answer
    assert example["labels"] == [X] * 3 + answer
    # concat with no room left for the copy: the original alone
    assert build(prompt, answer, "concat", max_length=len(full), min_answer_tokens=5, mask_ratio=0.5) == [
        {"input_ids": full, "labels": [X] * 3 + answer + [EOS]}
    ]


def test_very_long_prompt_is_cut_from_the_right_or_dropped():
    prompt = list(range(100, 140))
    assert build(prompt, [7, 8], "ntp", max_length=40) == []  # nothing labeled would remain
    assert build(prompt, [7] * 80, "concat", max_length=40) == []
    assert build(prompt, [7] * 80, "separate", max_length=40) == []
    (example,) = build(prompt, [7, 8], "ntp", max_length=41)
    assert example["input_ids"] == prompt + [7]  # the prompt's start is kept
    assert example["labels"] == [X] * 40 + [7]


def test_concat_copy_stays_aligned_under_truncation():
    prompt, answer = list(range(100, 110)), list(range(1000, 1080))
    original = prompt + answer + [EOS]  # 91 tokens
    max_length = 150  # the copy gets the 59 tokens left: a prefix of the original
    for seed in range(5):
        (example,) = build(prompt, answer, "concat", max_length=max_length, mask_ratio=0.25, seed=seed)
        ids, labels = example["input_ids"], example["labels"]
        assert len(ids) == max_length
        assert ids[:91] == original
        copy_ids, copy_labels = ids[91:], labels[91:]
        masked = check_copy(copy_ids, copy_labels, original, range(10, 90), 0.25)
        assert len(masked) == math.floor(0.25 * (59 - 10))
        for p in masked:  # the masked token can be looked up at the same offset in the original
            assert copy_labels[p] == ids[p]


def test_concat_original_cut_when_it_alone_exceeds_max_length():
    prompt, answer = [1, 2], list(range(500, 600))
    (example,) = build(prompt, answer, "concat", max_length=60)
    assert example["input_ids"] == (prompt + answer)[:60]
    assert example["labels"] == [X, X] + answer[:58]


def test_separate_truncates_both_examples():
    prompt, answer = [1, 2, 3, 4], list(range(500, 600))
    ntp, copy = build(prompt, answer, "separate", max_length=64, mask_ratio=0.1)
    source = prompt + answer
    assert ntp["input_ids"] == source[:64]
    masked = check_copy(copy["input_ids"], copy["labels"], source, range(4, 104), 0.1)
    assert len(copy["input_ids"]) == 64 and len(masked) == 6


def test_generator_determinism_and_fresh_masks():
    prompt, answer = [1, 2], list(range(10, 110))
    first = build(prompt, answer, "concat", seed=123)
    assert first == build(prompt, answer, "concat", seed=123)
    generator = torch.Generator().manual_seed(7)
    draws = [tuple(build(prompt, answer, "concat", generator=generator)[0]["input_ids"]) for _ in range(20)]
    assert len(set(draws)) == 20  # masks are redrawn on every call
    hit = {p for d in draws for p, t in enumerate(d) if t == MASK}
    assert len(hit) > 60  # spread over the answer, not a fixed pattern


def test_every_answer_position_can_be_masked():
    prompt, answer = [1, 2, 3], list(range(10, 60))
    generator = torch.Generator().manual_seed(0)
    counts = [0] * 50
    for _ in range(400):
        (example,) = build(prompt, answer, "concat", generator=generator)
        copy = example["input_ids"][54:]
        for p in range(3, 53):
            counts[p - 3] += copy[p] == MASK
        assert copy[:3] == prompt and copy[53] == EOS  # prompt and EOS never masked
    assert min(counts) > 0 and sum(counts) == 400 * 5


def test_multi_turn_segments_label_every_assistant_turn():
    segments = [([1, 50, 51], False), (list(range(100, 130)), True), ([60, 61], False), (list(range(200, 230)), True)]
    (ntp,) = build_meap_example_from_segments(
        segments, mode="ntp", mask_ratio=0.1, mask_token_id=MASK, eos_token_id=EOS, max_length=1000
    )
    expected_labels = [X] * 3 + list(range(100, 130)) + [X, X] + list(range(200, 230)) + [EOS]
    assert ntp["labels"] == expected_labels
    generator = torch.Generator().manual_seed(3)
    answer_positions = list(range(3, 33)) + list(range(35, 65))
    turns_hit = set()
    for _ in range(30):
        (example,) = build_meap_example_from_segments(
            segments, mode="concat", mask_ratio=0.1, mask_token_id=MASK, eos_token_id=EOS,
            max_length=1000, generator=generator,
        )
        n = len(ntp["input_ids"])
        masked = check_copy(example["input_ids"][n:], example["labels"][n:], ntp["input_ids"], answer_positions, 0.1)
        assert len(masked) == 6  # 10% of both turns together
        turns_hit |= {0 if p < 33 else 1 for p in masked}
    assert turns_hit == {0, 1}


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown MEAP mode"):
        build([1], [2], "mlm")
    with pytest.raises(ValueError, match="mask_ratio"):
        build([1], [2], "concat", mask_ratio=1.5)
    with pytest.raises(ValueError, match="mask token"):
        build_meap_example([1], [2], mode="concat", mask_ratio=0.1, mask_token_id=None, eos_token_id=EOS, max_length=8)


@pytest.mark.parametrize("mode", ["concat", "separate", "ntp"])
@pytest.mark.parametrize("make_room", [False, True])
def test_planned_masked_tokens_predicts_the_built_copy(mode, make_room):
    """The count `select_trainable` uses before training equals the [MASK]s the builder then puts in."""
    from lit_gpt.sft.builder import planned_masked_tokens

    rng = torch.Generator().manual_seed(3)
    for _ in range(300):
        n_prompt, n_answer = (int(n) for n in torch.randint(0, 90, (2,), generator=rng))
        max_length = int(torch.randint(4, 160, (1,), generator=rng))
        prompt, answer = [5] * n_prompt, [7] * n_answer
        options = dict(mode=mode, mask_ratio=0.2, max_length=max_length, min_answer_tokens=10,
                       make_room=make_room and mode == "concat")
        built = build_meap_example(prompt, answer, mask_token_id=MASK, eos_token_id=EOS, generator=rng, **options)
        masks = sum(e["input_ids"].count(MASK) for e in built)
        positions = list(range(n_prompt, n_prompt + n_answer))
        assert planned_masked_tokens(positions, n_prompt + n_answer + 1, **options) == masks, (n_prompt, n_answer,
                                                                                               max_length)
