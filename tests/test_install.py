"""A non-editable `pip install .` of a clean copy works from another directory: every `meap-*`
command, `scripts/meap_vs_ntp.py`, and a needle-in-a-haystack evaluation whose haystack is the one
this (editable) checkout builds."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lit_gpt.eval import retrieval
from lit_gpt.eval.haystack import default_corpus

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("meap-prepare", "meap-pretrain", "meap-convert", "meap-sft", "meap-eval")
NIAH = ["--task", "niah", "--context_lengths", "128,256", "--depths", "0,1", "--samples", "2",
        "--max_new_tokens", "4", "--device", "cpu"]
HAYSTACK_DIGEST = ("import hashlib; from lit_gpt.eval.haystack import default_corpus; c = default_corpus(); "
                   "print(hashlib.sha256('\\x00'.join(c.documents).encode()).hexdigest(), c.source)")


def clean_copy(dest: Path) -> Path:
    """The files a clone has: tracked ones and new ones git does not ignore (no build outputs, no venv)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    root = tmp_path_factory.mktemp("install")
    source = clean_copy(root / "src")
    env_dir = root / "venv"
    # The system's packages (torch...) are reused, pip and setuptools included (a venv's own bundled
    # setuptools may be too old for pyproject's license string); the project goes into the venv.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)], check=True)
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check", str(source)], check=True, cwd=root)
    shutil.rmtree(source / "build", ignore_errors=True)
    return env_dir


def run(venv_dir: Path, *argv, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_installed_package_is_not_the_checkout(venv, tmp_path):
    proc = run(venv, venv / "bin" / "python", "-c", "import lit_gpt; print(lit_gpt.__file__)", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(venv), proc.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_prints_its_help(venv, tmp_path, command):
    proc = run(venv, venv / "bin" / command, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower() and "Traceback" not in proc.stderr


def test_meap_vs_ntp_prints_its_help(venv, tmp_path):
    proc = run(venv, venv / "bin" / "python", venv.parent / "src" / "scripts" / "meap_vs_ntp.py", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--seeds" in proc.stdout


def test_niah_evaluation_uses_the_same_haystack(venv, tmp_path, model_dir):
    proc = run(venv, venv / "bin" / "python", "-c", HAYSTACK_DIGEST, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    corpus = default_corpus()
    here = hashlib.sha256("\x00".join(corpus.documents).encode()).hexdigest()
    assert proc.stdout.split(" ", 1) == [here, corpus.source + "\n"]

    proc = run(venv, venv / "bin" / "meap-eval", "retrieval", "--model_dir", model_dir, *NIAH,
               "--out_dir", tmp_path / "installed", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    installed = json.loads((tmp_path / "installed" / "results.json").read_text())
    editable = retrieval.main(["--model_dir", str(model_dir), *NIAH, "--out_dir", str(tmp_path / "editable")])
    assert installed["settings"]["haystack"] == editable["settings"]["haystack"] == corpus.source
    keys = ("context_length", "depth", "sample", "expected", "prompt_tokens", "generation")
    assert [[r[k] for k in keys] for r in installed["records"]] == [[r[k] for k in keys] for r in editable["records"]]
