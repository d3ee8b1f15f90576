#!/usr/bin/env bash
# IP-CLIP, target-free: no target domain is known; the unauthorized stream is the source under a
# strong style augmentation. Accuracy should stay on SOURCE and drop on every other domain.
# The CoOp reference is trained on SOURCE and tested on the same sets.
#   bash scripts/ipclip/target_free.sh [DATASET SOURCE] [SEED ...]
source "$(dirname "$0")/../common.sh"
parse_source_args "$@"
launch target_free "$SOURCE"
