"""`meap-pretrain` / MEAP-Pretrain/pretrain.py: MEAP pretraining from a recipe and overrides
(`meap-pretrain --config RECIPE --help` lists every setting with the recipe's values)."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from lit_gpt.cli import exit_on_user_error
from lit_gpt.pretrain.recipe import parse_args


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    args = parse_args(argv, prog=prog)
    from lit_gpt.pretrain.train import TrainingDiverged, pretrain

    try:
        return pretrain(args)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":  # `python -m lit_gpt.pretrain.cli`: what tools/compare runs, from any directory
    sys.exit(main(prog="meap-pretrain"))
