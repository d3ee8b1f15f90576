#!/usr/bin/env bash
# IP-CLIP, ownership verification: the unauthorized stream is the source with the owner's
# watermark; the clean vs watermarked accuracy gap on the source test set is the ownership evidence.
# The CoOp reference is trained on SOURCE and tested on the same sets.
#   bash scripts/ipclip/ownership.sh [DATASET SOURCE] [SEED ...]
source "$(dirname "$0")/../common.sh"
parse_source_args "$@"
launch ownership "$SOURCE"
