#!/bin/sh
# MEAP pretraining on this machine (every visible GPU unless --devices says otherwise, or the CPU),
# from any directory, with sh or bash:
#
#   bash scripts/run_one_node.sh pretrained/meap_1b.py [--key value ...]
#   bash scripts/run_one_node.sh pretrained/meap_tiny.py --max_steps 50
#
# `python MEAP-Pretrain/pretrain.py --config RECIPE --help` lists every setting.
set -eu
exec bash "$(cd "$(dirname "$0")" && pwd)/run_multi_node.sh" "$@" --num_nodes 1
