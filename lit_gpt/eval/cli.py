"""`meap-eval EVALUATION [options]`: one command for the evaluations in lit_gpt.eval.

An evaluation is a module with `main(argv)`; adding one is one line in `EVALUATIONS`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

from lit_gpt.cli import UserError, exit_on_user_error

# name -> (module with main(argv), one-line summary)
EVALUATIONS: dict[str, tuple[str, str]] = {
    "retrieval": ("lit_gpt.eval.retrieval", "passkey / needle-in-a-haystack / key-value retrieval over lengths x depths"),
    "multidoc_qa": ("lit_gpt.eval.multidoc_qa", "lost-in-the-middle multi-document QA by gold position"),
    "attention": ("lit_gpt.eval.attention", "attention share on the answer span and the context"),
}


def _usage() -> str:
    lines = ["usage: meap-eval {" + ",".join(EVALUATIONS) + "} [options]", "", "evaluations:"]
    lines += [f"  {name:<12} {summary}" for name, (_, summary) in EVALUATIONS.items()]
    lines += ["", "`meap-eval EVALUATION --help` lists an evaluation's options."]
    return "\n".join(lines)


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in EVALUATIONS:
        raise UserError(f"meap-eval: unknown evaluation {name!r}; choose one of {', '.join(EVALUATIONS)}")
    importlib.import_module(EVALUATIONS[name][0]).main(rest)
    return 0
