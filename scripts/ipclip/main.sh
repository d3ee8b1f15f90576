#!/usr/bin/env bash
# IP-CLIP, target-specified: protect SOURCE (authorized) against TARGET (unauthorized), over seeds,
# with the CoOp reference for the same pair and seeds (trained when missing); ends with the table.
#   bash scripts/ipclip/main.sh [DATASET SOURCE TARGET] [SEED ...]
#   no arguments: the synthetic benchmark with the tiny CLIP on CPU.
source "$(dirname "$0")/../common.sh"
parse_pair_args "$@"
launch target_specified "$SOURCE:$TARGET"
