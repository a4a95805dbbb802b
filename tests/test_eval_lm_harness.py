"""scripts/eval_lm_harness.sh: the lm_eval command it runs, offline switches, and its errors."""

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "eval_lm_harness.sh"
SYSTEM_PATH = "/usr/bin:/bin"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def fake_lm_eval(bin_dir: Path, record: Path) -> None:
    """An `lm_eval` that records the offline variables and its arguments (one a line) instead of evaluating."""
    bin_dir.mkdir()
    script = bin_dir / "lm_eval"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f"{{ echo \"${{HF_DATASETS_OFFLINE:-unset}}\"; echo \"${{HF_HUB_OFFLINE:-unset}}\"; printf '%s\\n' \"$@\"; }} > '{record}'\n"
    )
    script.chmod(0o755)


def recorded(record: Path):
    datasets_offline, hub_offline, *argv = record.read_text().splitlines()
    return {"HF_DATASETS_OFFLINE": datasets_offline, "HF_HUB_OFFLINE": hub_offline}, argv


def run(args, path, **env):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], env={"PATH": path, **env}, capture_output=True, text=True, timeout=60)


@pytest.fixture
def hf_dir(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_runs_the_paper_tasks(tmp_path, hf_dir):
    record = tmp_path / "call.json"
    fake_lm_eval(tmp_path / "bin", record)
    proc = run([hf_dir], f"{tmp_path / 'bin'}:{SYSTEM_PATH}")
    assert proc.returncode == 0, proc.stderr
    env, argv = recorded(record)
    assert argv[argv.index("--model") + 1] == "hf"
    assert argv[argv.index("--model_args") + 1] == f"pretrained={hf_dir},dtype=bfloat16"
    tasks = argv[argv.index("--tasks") + 1].split(",")
    assert sorted(tasks) == sorted(["arc_easy", "arc_challenge", "hellaswag", "piqa", "winogrande", "openbookqa", "boolq"])
    assert argv[argv.index("--batch_size") + 1] == "auto"
    assert argv[argv.index("--output_path") + 1] == f"{hf_dir}/lm_eval"
    assert env == {"HF_DATASETS_OFFLINE": "unset", "HF_HUB_OFFLINE": "unset"}


def test_offline_and_custom_tasks(tmp_path, hf_dir):
    record = tmp_path / "call.json"
    fake_lm_eval(tmp_path / "bin", record)
    proc = run([hf_dir, "piqa", tmp_path / "res"], f"{tmp_path / 'bin'}:{SYSTEM_PATH}", LM_EVAL_OFFLINE="1", LM_EVAL_ARGS="--limit 10")
    assert proc.returncode == 0, proc.stderr
    env, argv = recorded(record)
    assert env == {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    assert argv[argv.index("--tasks") + 1] == "piqa" and argv[argv.index("--output_path") + 1] == str(tmp_path / "res")
    assert argv[-2:] == ["--limit", "10"]


def test_clear_errors(tmp_path, hf_dir):
    proc = run([hf_dir], SYSTEM_PATH)
    assert proc.returncode != 0 and "lm_eval is not installed" in proc.stderr and "pip install lm-eval" in proc.stderr
    proc = run([tmp_path / "nothing"], SYSTEM_PATH)
    assert proc.returncode != 0 and "config.json" in proc.stderr
    proc = run([], SYSTEM_PATH)
    assert proc.returncode != 0 and "usage" in proc.stderr
