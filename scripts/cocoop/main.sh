#!/usr/bin/env bash
# CoCoOp (instance-conditional prompts): trained on SOURCE, tested on SOURCE and TARGET, over seeds.
#   bash scripts/cocoop/main.sh [DATASET SOURCE TARGET] [SEED ...]
source "$(dirname "$0")/../common.sh"
parse_pair_args "$@"
for SEED in $SEEDS; do
    run_train CoCoOp "$SEED"
done
finish
