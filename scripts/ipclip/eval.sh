#!/usr/bin/env bash
# Re-evaluate trained IP-CLIP runs (eval only) on the scenario's test sets (target-specified), or on
# those given in TEST_SETS (e.g. TEST_SETS="['{domain}=each']" for every domain).
#   bash scripts/ipclip/eval.sh [DATASET SOURCE TARGET] [SEED ...]
# Results: ${OUTPUT}/evaluation/<dataset>/IPCLIP/<cfg>/<source>_<target>/seed<N>/results.json
source "$(dirname "$0")/../common.sh"
parse_pair_args "$@"
for SEED in $SEEDS; do
    model_dir="$(run_dir IPCLIP "$SEED")"
    if [ ! -f "$model_dir/ip_learner/checkpoint" ]; then
        echo "error: no trained IP-CLIP run at $model_dir (run scripts/ipclip/main.sh first)" >&2
        exit 1
    fi
    last="$(head -n 1 "$model_dir/ip_learner/checkpoint")"
    epoch="${last##*-}"
    out="${OUTPUT}/evaluation/${DATASET}/IPCLIP/${CFG}/${SOURCE}_${TARGET}/seed${SEED}"
    extra=()
    if [ -n "${TEST_SETS:-}" ]; then
        extra=(DATASET.TEST_SETS "$TEST_SETS")
    fi
    "$PYTHON" train.py \
        --root "$DATA" --seed "$SEED" --trainer IPCLIP \
        --dataset-config-file "configs/datasets/${DATASET}.yaml" \
        --config-file "configs/trainers/IPCLIP/${CFG}.yaml" \
        --source-domains "$SOURCE" --target-domains "$TARGET" \
        --output-dir "$out" --eval-only --model-dir "$model_dir" --load-epoch "$epoch" \
        "${extra[@]}"
done
"$PYTHON" tools/parse_results.py "${OUTPUT}/evaluation/${DATASET}"
