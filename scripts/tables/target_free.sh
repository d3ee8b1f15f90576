#!/usr/bin/env bash
# Paper table, target-free: IP-CLIP and its CoOp reference with every domain of DATASET as the
# source, over SEEDS.
#   bash scripts/tables/target_free.sh [DATASET] [--dry-run]
source "$(dirname "$0")/_table.sh"
parse_table_args "$@"
for SOURCE in $(domains_of "$DATASET"); do
    TARGET="$SOURCE"
    PAIR="${SOURCE}_target_free"
    run_ipclip target_free
done
finish
