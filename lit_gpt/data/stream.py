"""Streams of samples addressed by position, and the state a resume needs (the count of samples
consumed, checked against what the stream is)."""

from __future__ import annotations

from typing import Iterator, Optional

import torch

from lit_gpt.errors import UserError

STATE_VERSION = 1


class ResumableStream:
    """A per-rank stream of samples addressed by position.

    Position n is the n-th sample this rank's trainer receives; a subclass's `sample_at(n)` reads it
    directly (None past the end of the stream). Iterating yields sample_at(consumed),
    sample_at(consumed + 1), ... and advances `consumed` (where the next iteration starts), which
    is all a resume needs.
    """

    # The state's "kind" (a subclass's earlier name, so older checkpoints resume); a subclass's
    # `_identity()` is what a saved state must match.
    KIND: str

    def __init__(self):
        self.consumed = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        position = self.consumed
        while (sample := self.sample_at(position)) is not None:
            position += 1
            self.consumed = position
            yield sample
        self.consumed = 0  # a finished pass: the next iteration starts a new one

    def state_dict(self, consumed: Optional[int] = None) -> dict:
        """Where this rank's stream stands after `consumed` samples (default: those taken so far). In DDP
        every rank consumes as many samples, so rank 0's state resumes any rank."""
        consumed = self.consumed if consumed is None else consumed
        return {"kind": self.KIND, "version": STATE_VERSION, "consumed": consumed, **self._identity()}

    def check_state(self, state: dict) -> None:
        kind = self.KIND
        if not isinstance(state, dict) or state.get("kind") != kind:
            found = state.get("kind") if isinstance(state, dict) else type(state).__name__
            raise UserError(f"cannot resume the data stream: the saved state is for {found!r}, this run reads a {kind}")
        for key, value in {"version": STATE_VERSION, **self._identity()}.items():
            if state.get(key) != value:
                raise UserError(
                    f"cannot resume the data stream: it was saved with {key}={state.get(key)!r}, "
                    f"this run has {key}={value!r}"
                )

    def load_state_dict(self, state: dict) -> None:
        self.check_state(state)
        self.consumed = int(state["consumed"])
