#!/bin/sh
# The upstream command, kept working: cd MEAP-Pretrain && sh run_one_node.sh ../pretrained/meap_1b.py
# (the launcher itself is scripts/run_one_node.sh).
set -eu
exec sh "$(cd "$(dirname "$0")" && pwd)/../scripts/run_one_node.sh" "$@"
