"""MEAP pretraining (the `meap-pretrain` command after `pip install -e .`).

    python MEAP-Pretrain/pretrain.py --config pretrained/meap_1b.py [--key value ...]

`--help` (after --config, to see the recipe's values as defaults) lists every setting.
"""

import sys

from lit_gpt.pretrain.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="pretrain.py"))
