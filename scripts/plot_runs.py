"""Training and validation loss of several runs in one figure.

    python scripts/plot_runs.py out/meap_0.1b out/ntp_0.1b --out curves.png --labels MEAP NTP --smooth 20

Each RUN_DIR must hold the metrics.csv its training run wrote (see tools/run_curves.py).
"""

import sys
from pathlib import Path

# tools/ lives in the repository, beside this script, not in the installed lit_gpt package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    from lit_gpt.cli import ArgumentParser, exit_on_user_error
    from tools.run_curves import load_runs, plot_runs
except ImportError as err:  # run from a clone that was never installed
    sys.exit(f"error: {err}; install the project first: pip install -e .")


@exit_on_user_error
def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", default="curves.png", help="the figure to write (.png, .pdf, .svg)")
    parser.add_argument("--labels", nargs="+", default=None, help="one per run, space- or comma-separated (default: folder names)")
    parser.add_argument("--smooth", type=int, default=20, help="moving-average window of the training loss, at most a tenth of the shortest run (1: none)")
    args = parser.parse_args(argv)
    labels = [label for item in args.labels for label in item.split(",") if label] if args.labels else None
    path = plot_runs(load_runs(args.run_dirs), args.out, labels=labels, smooth=args.smooth)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
