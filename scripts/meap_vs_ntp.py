"""MEAP vs NTP, measured: paired runs per seed, the same evaluation, confidence intervals.

    python scripts/meap_vs_ntp.py --config pretrained/meap_tiny.py --seeds 3 --out_dir out/cmp [--max_steps 200 ...]

`--help` lists the comparison's options; every other `--key value` is passed to the trainer.
"""

import sys
from pathlib import Path

# tools/ lives in the repository, beside this script, not in the installed lit_gpt package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.compare.cli import main

if __name__ == "__main__":
    main()
