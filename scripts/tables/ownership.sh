#!/usr/bin/env bash
# Paper table, ownership: IP-CLIP and its CoOp reference with every domain of DATASET as the
# source, over SEEDS.
#   bash scripts/tables/ownership.sh [DATASET] [--dry-run]
source "$(dirname "$0")/_table.sh"
parse_table_args "$@"
launch ownership
