"""scripts/plot_runs.py and the metrics.csv reader behind it."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lit_gpt.errors import UserError
from tools.run_curves import load_runs, moving_average, plot_runs, read_run_curves

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_csv(path: Path, header, rows):
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def val_column_run(path: Path, offset: float = 0.0) -> Path:
    """val_loss filled on evaluation rows only; the eval rows are also train rows."""
    rows = []
    for step in range(1, 41):
        val = f"{5.0 - step / 20 + offset:.3f}" if step % 10 == 0 else ""
        rows.append([step, step * 4096, f"{6.0 - step / 10 + offset:.3f}", "4e-4", "50000", val])
    return write_csv(path, ["step", "tokens", "loss", "lr", "tokens_per_sec", "val_loss"], rows)


def split_column_run(path: Path) -> Path:
    rows = [[s, s * 4096, "train", f"{6.0 - s / 10:.3f}", "4e-4", "51000"] for s in range(1, 31)]
    rows += [[s, s * 4096, "val", f"{5.5 - s / 20:.3f}", "", ""] for s in (10, 20, 30)]
    return write_csv(path, ["step", "tokens", "split", "loss", "lr", "tokens_per_sec"], rows)


def test_reads_both_layouts(tmp_path):
    a = read_run_curves(val_column_run(tmp_path / "meap"))
    assert a.name == "meap" and a.x_label == "tokens"
    assert len(a.train_loss) == 40 and a.train_x[0] == 4096 and a.train_loss[0] == pytest.approx(5.9)
    assert a.val_x == [40960, 81920, 122880, 163840] and a.val_loss == pytest.approx([4.5, 4.0, 3.5, 3.0])

    b = read_run_curves(split_column_run(tmp_path / "ntp"))
    assert len(b.train_loss) == 30 and b.val_loss == pytest.approx([5.0, 4.5, 4.0])

    empty_loss = write_csv(tmp_path / "c", ["step", "tokens", "loss", "val_loss"], [[1, 10, "3.0", ""], [2, 20, "", "2.5"], [3, 30, "nan", ""]])
    c = read_run_curves(empty_loss)
    assert (c.train_x, c.val_x, c.val_loss) == ([10.0], [20.0], [2.5])


def test_runs_without_tokens_are_all_plotted_against_steps(tmp_path):
    with_tokens = val_column_run(tmp_path / "a")
    without = write_csv(tmp_path / "b", ["step", "loss"], [[1, "5.0"], [2, "4.0"]])
    runs = load_runs([with_tokens, without])
    assert [r.x_label for r in runs] == ["step", "step"]
    assert runs[0].train_x[:3] == [1.0, 2.0, 3.0]


def test_moving_average():
    assert moving_average([1.0, 2.0, 3.0, 4.0], 2) == pytest.approx([1.0, 1.5, 2.5, 3.5])
    assert moving_average([1.0, 2.0, 6.0], 3) == pytest.approx([1.0, 1.5, 3.0])
    assert moving_average([1.0, 5.0], 1) == [1.0, 5.0]


def run_script(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "plot_runs.py"), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_script_draws_two_runs(tmp_path):
    meap, ntp = val_column_run(tmp_path / "meap"), split_column_run(tmp_path / "ntp")
    proc = run_script(meap, ntp, "--out", tmp_path / "figs" / "curves.png", "--labels", "MEAP,NTP", "--smooth", 5, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "figs" / "curves.png").read_bytes().startswith(PNG_MAGIC)


def test_missing_metrics_is_one_line_naming_the_dir(tmp_path):
    meap = val_column_run(tmp_path / "meap")
    (tmp_path / "empty_run").mkdir()
    proc = run_script(meap, tmp_path / "empty_run", "--out", tmp_path / "c.png", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "empty_run" in lines[0] and "metrics.csv" in lines[0]
    assert not (tmp_path / "c.png").exists()


def test_label_count_must_match(tmp_path):
    runs = load_runs([val_column_run(tmp_path / "a"), val_column_run(tmp_path / "b", offset=0.1)])
    with pytest.raises(UserError, match="2 runs"):
        plot_runs(runs, tmp_path / "c.png", labels=["only one"])
    assert plot_runs(runs, tmp_path / "c.svg", smooth=1).read_text().lstrip().startswith("<?xml")


def test_a_figure_type_matplotlib_cannot_write_is_one_line_and_writes_nothing(tmp_path):
    run = val_column_run(tmp_path / "a")
    proc = run_script(run, "--out", tmp_path / "c.xyz", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "c.xyz" in lines[0] and ".png" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
