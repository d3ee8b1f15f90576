#!/usr/bin/env bash
# CoOp, the unprotected reference: trained on SOURCE, tested on SOURCE (authorized) and TARGET
# (unauthorized), over seeds; zero-shot CLIP on every domain is evaluated too when it is missing.
#   bash scripts/coop/main.sh [DATASET SOURCE TARGET] [SEED ...]
source "$(dirname "$0")/../common.sh"
parse_pair_args "$@"
for SEED in $SEEDS; do
    run_eval_only ZeroshotCLIP "$SEED" DATASET.TEST_SETS "['authorized=source','unauthorized=target','{domain}=each']"
    run_train CoOp "$SEED"
done
finish
