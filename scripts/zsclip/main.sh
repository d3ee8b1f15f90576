#!/usr/bin/env bash
# Zero-shot CLIP ("a photo of a {}.") on the source, the target and every domain of the dataset.
#   bash scripts/zsclip/main.sh [DATASET SOURCE TARGET] [SEED ...]
source "$(dirname "$0")/../common.sh"
parse_pair_args "$@"
for SEED in $SEEDS; do
    run_eval_only ZeroshotCLIP "$SEED" DATASET.TEST_SETS "['authorized=source','unauthorized=target','{domain}=each']"
done
finish
