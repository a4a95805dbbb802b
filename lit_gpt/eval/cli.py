"""`meap-eval EVALUATION [options]`: one command for the evaluations in lit_gpt.eval."""

from __future__ import annotations

import importlib
from typing import Callable, Optional, Sequence

from lit_gpt.cli import exit_on_user_error, run_subcommand

# name -> (module with main(argv, prog), one-line summary): adding an evaluation is one line here
EVALUATIONS: dict[str, tuple[str, str]] = {
    "retrieval": ("lit_gpt.eval.retrieval", "passkey / needle-in-a-haystack / key-value retrieval over lengths x depths"),
    "multidoc_qa": ("lit_gpt.eval.multidoc_qa", "lost-in-the-middle multi-document QA by gold position"),
    "attention": ("lit_gpt.eval.attention", "attention share on the answer span and the context"),
}


def _run_module(module: str) -> Callable[[list[str], str], None]:
    return lambda argv, prog: importlib.import_module(module).main(argv, prog)  # imported only when chosen


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None) -> int:
    table = {name: (_run_module(module), summary) for name, (module, summary) in EVALUATIONS.items()}
    return run_subcommand("meap-eval", "evaluation", table, argv)
