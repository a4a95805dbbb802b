"""Running Liger's Triton kernels on CPU tensors in Triton's interpreter, for tests.

The interpreter is chosen when a `@triton.jit` kernel is defined, i.e. when triton and
liger_kernel are first imported, and only if `TRITON_INTERPRET=1` is set then. So the tests
decorated with `@interpreted` never run in the ordinary pytest process: there, the first of them
runs their whole module once in a child `python -m pytest` with `TRITON_INTERPRET=1`, and each
test reports the outcome its own body had in that child. The ordinary process never sets the
variable, so no other test sees the interpreter (nor a GPU run, where Liger must compile).

In the child each body runs inside `lit_gpt.kernels.liger_on_cpu()`, after `apply_shims()`.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS_ENV = "MEAP_TEST_INTERPRETER_RESULTS"  # where the child records each test's outcome
CHILD_TIMEOUT_S = 600


def in_interpreter() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1" and RESULTS_ENV in os.environ


# ----------------------------------------------------------------------------- shims
_shimmed = False


def apply_shims() -> None:
    """Two gaps of the interpreter (triton 3.9) that Liger's kernels (0.8.5) run into.

    Must run before liger_kernel.ops.rms_norm is imported (or it patches that module too).
    """
    global _shimmed
    if _shimmed:
        return
    import numpy as np
    import triton.language as tl
    import triton.language.extra.libdevice as libdevice
    from triton.runtime import interpreter

    # (a) Compiled Triton turns a Python float argument (Liger's `eps`, SwiGLU's multipliers)
    # into an fp32 scalar; the interpreter passes the bare float on, and `eps.to(...)` inside the
    # kernel then fails. Give floats the same fp32 scalar form that it already gives ints.
    convert = interpreter._implicit_cvt

    def convert_with_floats(arg):
        if isinstance(arg, float):
            return tl.tensor(interpreter.TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
        return convert(arg)

    interpreter._implicit_cvt = convert_with_floats

    # (b) libdevice functions are stubs that the interpreter replaces only when a kernel reaches
    # them through a module attribute; Liger imports `rsqrt` by name, so it stays the stub and
    # returns None. Bind the name to a function that looks tl.math.rsqrt up at call time, when
    # the interpreter has put its own version there.
    def rsqrt(x):
        return tl.math.rsqrt(x)

    libdevice.rsqrt = rsqrt
    rms_norm_module = sys.modules.get("liger_kernel.ops.rms_norm")
    if rms_norm_module is not None:
        rms_norm_module.rsqrt = rsqrt
    _shimmed = True


# ----------------------------------------------------------------------------- the decorator
def _current_test_id() -> str:
    # "tests/test_x.py::test_y[param] (call)" -> the node id, the same in parent and child.
    return os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]


def _record(outcome: str, message: str = "") -> None:
    with open(os.environ[RESULTS_ENV], "a") as f:
        f.write(json.dumps({"id": _current_test_id(), "outcome": outcome, "message": message}) + "\n")


_child_runs: dict[str, tuple[dict, str]] = {}


def _run_module_in_child(module_file: str) -> tuple[dict, str]:
    """Runs every `triton_interpret` test of `module_file` in one child process, once."""
    if module_file not in _child_runs:
        with tempfile.TemporaryDirectory() as folder:
            results = Path(folder) / "results.jsonl"
            results.touch()
            env = {**os.environ, "TRITON_INTERPRET": "1", RESULTS_ENV: str(results)}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "triton_interpret", module_file]
            try:
                proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
                output = proc.stdout + proc.stderr
            except subprocess.TimeoutExpired as error:
                output = f"child pytest timed out after {CHILD_TIMEOUT_S} s\n{error.stdout or ''}"
            outcomes = {}
            for line in results.read_text().splitlines():
                entry = json.loads(line)
                outcomes[entry["id"]] = entry
        _child_runs[module_file] = (outcomes, output)
    return _child_runs[module_file]


def interpreted(test):
    """Marks `test` `triton_interpret` and runs its body in the interpreter child (see above)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        if in_interpreter():
            from lit_gpt import kernels

            try:
                apply_shims()
                with kernels.liger_on_cpu():
                    test(*args, **kwargs)
            except pytest.skip.Exception as error:
                _record("skipped", str(error))
                raise
            except BaseException as error:
                import traceback

                _record("failed", "".join(traceback.format_exception(error))[-6000:])
                raise
            _record("passed")
            return
        outcomes, output = _run_module_in_child(test.__code__.co_filename)
        entry = outcomes.get(_current_test_id())
        if entry is None:
            pytest.fail(f"no result from the interpreter child; its output ends:\n{output[-4000:]}", pytrace=False)
        if entry["outcome"] == "skipped":
            pytest.skip(entry["message"])
        if entry["outcome"] != "passed":
            pytest.fail(f"failed under TRITON_INTERPRET=1:\n{entry['message']}", pytrace=False)

    return pytest.mark.triton_interpret(wrapper)
