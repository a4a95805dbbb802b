"""What the MEAP collator did, counted where it is true and shown with every training log.

The collator may run in DataLoader workers, whose own counters die with them, so each batch carries
its counts (`data.COUNTS_KEY`); `MEAPTrainer` takes them out before the model sees the batch, sums
them on the device, and at every training log (all processes take part, as in the Trainer's own
loss gather) adds the interval's figures to the log line.
"""

from __future__ import annotations

import torch
from transformers import Trainer

from lit_gpt.sft.data import COUNT_NAMES, COUNTS_KEY


def summarize(counts: torch.Tensor) -> dict:
    values = dict(zip(COUNT_NAMES, (int(v) for v in counts.tolist())))
    values["masked_share"] = values["masked_tokens"] / values["loss_tokens"] if values["loss_tokens"] else 0.0
    return values


def describe(values: dict) -> str:
    return (f"{values['samples']} samples, {values['masked_copies']} masked copies, {values['masked_tokens']} masked "
            f"answer tokens = {100 * values['masked_share']:.1f} % of {values['loss_tokens']} loss tokens, "
            f"{values['dropped']} dropped")


class MEAPTrainer(Trainer):
    """`transformers.Trainer` that removes the collator's counts from each batch and logs them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._interval = None  # counts since the last training log, on the device
        self.meap_totals = torch.zeros(len(COUNT_NAMES), dtype=torch.long)  # training batches, all processes

    def training_step(self, model, inputs, num_items_in_batch=None):
        counts = inputs.pop(COUNTS_KEY, None)
        if counts is not None:  # summed on the device: no host sync per step
            self._interval = counts if self._interval is None else self._interval + counts
        return super().training_step(model, inputs, num_items_in_batch)

    def _take_interval(self) -> torch.Tensor:
        """This interval's counts summed over every process (a collective: every process calls it)."""
        counts = self._interval if self._interval is not None else torch.zeros(
            len(COUNT_NAMES), dtype=torch.long, device=self.args.device)
        self._interval = None
        if self.accelerator.num_processes > 1:
            counts = self.accelerator.reduce(counts.to(self.args.device), reduction="sum")
        counts = counts.cpu()
        self.meap_totals += counts
        return counts

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs and "eval_loss" not in logs:  # a training log: every process is here
            values = summarize(self._take_interval())
            logs.update({f"meap_{name}": values[name]
                         for name in ("samples", "masked_copies", "masked_tokens", "masked_share")})
        super().log(logs, start_time)

    def finish_counts(self) -> dict:
        """The totals of the run, the batches after the last log included (call on every process)."""
        self._take_interval()
        return summarize(self.meap_totals)
