#!/usr/bin/env bash
# IP-CLIP, applicability authorization: the watermark is the licence key; the model should work
# only on watermarked SOURCE images (every domain is tested with and without the watermark).
# The CoOp reference is trained on SOURCE and tested on the same sets.
#   bash scripts/ipclip/authorization.sh [DATASET SOURCE] [SEED ...]
source "$(dirname "$0")/../common.sh"
parse_source_args "$@"
launch authorization "$SOURCE"
