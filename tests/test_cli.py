"""The console commands of `pip install -e .` ([project.scripts] in pyproject.toml)."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"meap-prepare", "meap-pretrain", "meap-convert", "meap-sft", "meap-eval"}


def scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_command_names_a_callable_in_the_package():
    table = scripts()
    assert set(table) == COMMANDS
    for name, target in table.items():
        module, _, function = target.partition(":")
        assert module.startswith("lit_gpt.") and function, (name, target)
        assert callable(getattr(importlib.import_module(module), function)), (name, target)


# What pip's generated wrapper does: sys.argv[0] is the command, then sys.exit(function()).
DRIVER = """
import importlib, io, json, sys, contextlib
results = []
for name, target, argv in json.loads(sys.argv[1]):
    module, _, function = target.partition(":")
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [name, *argv]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            sys.exit(getattr(importlib.import_module(module), function)())
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    results.append([name, argv, code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def test_help_of_every_command_and_subcommand_exits_0_and_bad_choices_are_one_line():
    table = scripts()
    calls = [[name, table[name], ["--help"]] for name in sorted(COMMANDS)]
    calls += [["meap-convert", table["meap-convert"], [sub, "--help"]] for sub in ("lit-to-hf", "hf-to-lit", "safetensors")]
    calls += [["meap-eval", table["meap-eval"], [sub, "--help"]] for sub in ("retrieval", "multidoc_qa")]
    calls += [["meap-convert", table["meap-convert"], ["bogus"]], ["meap-eval", table["meap-eval"], ["bogus"]]]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(calls)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, argv, code, out, err in results:
        if argv == ["bogus"]:
            assert code == 2 and len(err.strip().splitlines()) == 1 and "'bogus'" in err, (name, err)
        else:
            assert code == 0 and "usage" in out.lower(), (name, argv, code, out[-500:], err[-500:])
    listed = {name: out for name, argv, _, out, _ in results if argv == ["--help"]}
    assert all(sub in listed["meap-convert"] for sub in ("lit-to-hf", "hf-to-lit", "safetensors"))
    assert all(sub in listed["meap-eval"] for sub in ("retrieval", "multidoc_qa"))


def test_help_names_the_command_typed_and_lists_break_where_written(capsys):
    from lit_gpt.convert.cli import main as convert_main
    from lit_gpt.eval.cli import main as eval_main
    from lit_gpt.prepare.cli import main as prepare_main

    for call, argv in ((eval_main, ["retrieval", "--help"]), (eval_main, ["multidoc_qa", "--help"]),
                       (eval_main, ["attention", "--help"]), (convert_main, ["lit-to-hf", "--help"]),
                       (prepare_main, ["--help"])):
        with pytest.raises(SystemExit):
            call(argv)
        out = capsys.readouterr().out
        if call is eval_main:
            assert out.startswith(f"usage: meap-eval {argv[0]} "), out[:80]
        if call is convert_main:
            assert "convert_lit_checkpoint.py" not in out and "    meap-convert lit-to-hf --checkpoint_name" in out
        if call is prepare_main:
            assert "--destination_path data/c4_bin \\\n" in out
