#!/usr/bin/env bash
# Paper table, authorization: IP-CLIP and its CoOp reference with every domain of DATASET as the
# source, over SEEDS.
#   bash scripts/tables/authorization.sh [DATASET] [--dry-run]
source "$(dirname "$0")/_table.sh"
parse_table_args "$@"
launch authorization
