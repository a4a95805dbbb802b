"""MEAP vs NTP, measured: paired runs per seed, the same evaluation, bootstrap confidence intervals.

    python scripts/meap_vs_ntp.py --config pretrained/meap_tiny.py --seeds 3 --out_dir out/cmp [--max_steps 200 ...]

`--help` lists the comparison's options; every other `--key value` is passed to the trainer.
"""

from lit_gpt.compare.cli import main

if __name__ == "__main__":
    main()
