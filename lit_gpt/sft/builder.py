"""Turning one tokenized instruction/answer pair into MEAP training examples (SPEC §3).

Pure token-level code, called by the data collator every time a sample is drawn, so the masked
positions change from epoch to epoch. Labels follow the Hugging Face convention (same length as
`input_ids`, shifted by the model, `IGNORE_INDEX` without loss): a masked copy labels position p
with the original token x_p while its input at p is `[MASK]`, so the model predicts x_p from the
copy's prefix, and in "concat" mode also from the unmasked original before it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import torch

from lit_gpt.loss import IGNORE_INDEX
from lit_gpt.meap import num_masked

MEAP_MODES = ("concat", "separate", "ntp")

# (token ids, is_answer): a rendered conversation, prompt and answer parts in order.
TokenSegment = Tuple[Sequence[int], bool]


def build_meap_example(prompt_ids: Sequence[int], answer_ids: Sequence[int], **options: Any) -> list[dict]:
    """The training examples for one prompt/answer pair, each `{"input_ids", "labels"}` (lists).

    - "ntp": one example, prompt + answer + EOS; the answer and EOS are labeled.
    - "concat" (the paper): the ntp example followed by a masked copy (prompt + answer with
      `floor(mask_ratio * len(answer))` answer positions replaced by `mask_token_id` + EOS) in one
      sequence. In the copy only the masked positions are labeled, each with the original token.
    - "separate" (the upstream code): the ntp example and the masked copy as two examples.

    Answers shorter than `min_answer_tokens` get no copy. Everything is cut to `max_length`
    from the right, so the prompt's start survives. In "concat" mode the original keeps its ntp
    length and the copy gets the room left over, cut at the same position as a prefix of the
    original: copy position j always copies original position j. A copy left without a masked
    answer token is not emitted; an example left without any labeled token is dropped, so the
    result may be empty. `make_room` ("concat" only): a sample longer than `max_length // 2` whose
    first answer token lies in that half is cut to it and followed by its masked copy of the same
    length, which keeps the paper's one-sequence layout for long samples.
    """
    return build_meap_example_from_segments([(prompt_ids, False), (answer_ids, True)], **options)


def layout(length: int, answer_positions: Sequence[int], *, mode: str, max_length: int,
           make_room: bool = False) -> Tuple[int, int]:
    """(tokens kept of the original, tokens of it the masked copy may use) for a sample of `length`
    tokens (EOS included): in "concat" mode the copy gets what the original leaves of `max_length`."""
    ntp_length = min(length, max_length)
    if mode != "concat":
        return ntp_length, max_length
    half = max_length // 2
    if make_room and length > half and answer_positions and answer_positions[0] < half:
        return half, half
    return ntp_length, max_length - ntp_length


def planned_masked_tokens(answer_positions: Sequence[int], length: int, *, mode: str, mask_ratio: float,
                          max_length: int, min_answer_tokens: int, make_room: bool = False) -> int:
    """Answer tokens the masked copy of a sample of `length` tokens (EOS included) will hold, 0 for no
    copy: the builder decides with the same `layout`, so this counts copies over a split before training."""
    if mode == "ntp" or len(answer_positions) < min_answer_tokens:
        return 0
    ntp_length, room = layout(length, answer_positions, mode=mode, max_length=max_length, make_room=make_room)
    if not any(p < ntp_length for p in answer_positions):
        return 0  # the original has no labeled token: the sample is dropped
    return num_masked(mask_ratio, sum(1 for p in answer_positions if p < min(length, room)))


def build_meap_example_from_segments(
    segments: Sequence[TokenSegment],
    *,
    mode: str,
    mask_ratio: float,
    mask_token_id: Optional[int],
    eos_token_id: int,
    max_length: int,
    min_answer_tokens: int = 50,
    generator: Optional[torch.Generator] = None,
    make_room: bool = False,
) -> list[dict]:
    """`build_meap_example` for a multi-turn conversation given as (ids, is_answer) segments.

    Every answer segment (each assistant turn) is labeled in the ntp part; the answer length that
    `min_answer_tokens` and `mask_ratio` refer to is the total over all assistant turns, and the
    copy's masks are drawn uniformly among all answer positions. One EOS closes the sequence.
    """
    if mode not in MEAP_MODES:
        raise ValueError(f"unknown MEAP mode {mode!r}; known: {', '.join(MEAP_MODES)}")
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
    if mode != "ntp" and mask_token_id is None:
        raise ValueError(f"MEAP mode {mode!r} needs a mask token id")
    tokens: list[int] = []
    answer_positions: list[int] = []
    for ids, is_answer in segments:
        if is_answer:
            answer_positions.extend(range(len(tokens), len(tokens) + len(ids)))
        tokens.extend(int(t) for t in ids)
    tokens.append(int(eos_token_id))

    ntp_length, copy_room = layout(len(tokens), answer_positions, mode=mode, max_length=max_length,
                                   make_room=make_room)
    ntp_ids = tokens[:ntp_length]
    ntp_labels = [IGNORE_INDEX] * ntp_length
    for p in answer_positions:
        if p >= ntp_length:
            break
        ntp_labels[p] = tokens[p]
    if ntp_length == len(tokens):
        ntp_labels[-1] = tokens[-1]  # EOS, kept only when nothing was cut
    if all(label == IGNORE_INDEX for label in ntp_labels):
        return []  # the prompt fills max_length: nothing to learn from

    ntp = {"input_ids": ntp_ids, "labels": ntp_labels}
    if mode == "ntp" or len(answer_positions) < min_answer_tokens:
        return [ntp]
    # The copy: the first `copy_room` tokens with a fraction of their answer positions masked.
    length = min(len(tokens), copy_room)
    candidates = [p for p in answer_positions if p < length]
    n_masked = num_masked(mask_ratio, len(candidates))
    if n_masked == 0:
        return [ntp]
    copy_ids, copy_labels = tokens[:length], [IGNORE_INDEX] * length
    for i in torch.randperm(len(candidates), generator=generator)[:n_masked].tolist():
        copy_ids[candidates[i]] = mask_token_id
        copy_labels[candidates[i]] = tokens[candidates[i]]
    if mode == "concat":
        return [{"input_ids": ntp_ids + copy_ids, "labels": ntp_labels + copy_labels}]
    return [ntp, {"input_ids": copy_ids, "labels": copy_labels}]
