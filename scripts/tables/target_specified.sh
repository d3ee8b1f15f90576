#!/usr/bin/env bash
# Paper table, target-specified protection: IP-CLIP and its CoOp reference on every ordered pair of
# domains of DATASET (Office-31: 6 pairs, Office-Home: 12, Mini-DomainNet: 12), over SEEDS.
#   bash scripts/tables/target_specified.sh [DATASET] [--dry-run]
source "$(dirname "$0")/_table.sh"
parse_table_args "$@"
launch target_specified
