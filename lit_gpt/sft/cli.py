"""`meap-sft` / MEAP-SFT/sft.py: `--help` lists the SFT options, `--help_trainer` the Trainer's."""

from __future__ import annotations

from typing import Optional, Sequence

from lit_gpt.cli import exit_on_user_error


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None) -> None:
    from lit_gpt.sft.train import main as train_main

    train_main(argv)
