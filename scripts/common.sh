# Shared by every scripts/<trainer>/*.sh: argument parsing, run folders, skip-finished, tables.
# Usage of the scripts: bash scripts/<trainer>/main.sh [DATASET SOURCE TARGET] [SEED ...]
#   no arguments, or DATASET "toy": the synthetic benchmark with the tiny CLIP on CPU.
# Environment: DATA (dataset root), OUTPUT (output root, default output), CFG (trainer config name),
#              SEEDS (default "1 2 3"; extra arguments after TARGET override it), PYTHON (default python).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python}"
OUTPUT="${OUTPUT:-output}"

# The toy pair: trained on clean product-like renders, protected against line sketches.
TOY_SOURCE=photo
TOY_TARGET=sketch

parse_pair_args() {
    DATASET="${1:-toy}"
    if [ "$DATASET" = "toy" ] || [ "$DATASET" = "toy_domains" ]; then
        DATASET=toy_domains
        SOURCE="${2:-$TOY_SOURCE}"
        TARGET="${3:-$TOY_TARGET}"
        CFG="${CFG:-tiny}"
        DATA="${DATA:-$REPO/data}"
    else
        if [ $# -lt 3 ]; then
            echo "usage: $0 DATASET SOURCE TARGET [SEED ...]   (or no arguments for the synthetic benchmark)" >&2
            exit 2
        fi
        SOURCE="$2"
        TARGET="$3"
        CFG="${CFG:-vit_b16}"
        if [ -z "${DATA:-}" ]; then
            echo "error: set DATA to the folder that holds the datasets (see README, section Datasets)" >&2
            exit 2
        fi
    fi
    if [ $# -gt 3 ]; then
        shift 3
        SEEDS="$*"
    fi
    SEEDS="${SEEDS:-1 2 3}"
    if [ ! -f "configs/datasets/${DATASET}.yaml" ]; then
        echo "error: no dataset config configs/datasets/${DATASET}.yaml; available:" \
            "$(ls configs/datasets | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
        exit 2
    fi
}

run_dir() {  # run_dir TRAINER SEED [PAIR]
    echo "${OUTPUT}/${DATASET}/$1/${CFG}/${3:-${SOURCE}_${TARGET}}/seed$2"
}

is_finished() {  # is_finished DIR: results.json says the run finished
    [ -f "$1/results.json" ] && grep -q '"finished": true' "$1/results.json"
}

# run_train TRAINER SEED [KEY VALUE ...]: train (resuming an interrupted run) unless already finished.
run_train() {
    local trainer="$1" seed="$2"
    shift 2
    local dir
    dir="$(run_dir "$trainer" "$seed")"
    if is_finished "$dir"; then
        echo "Skip ${trainer} seed ${seed}: finished run at ${dir}"
        return 0
    fi
    echo "Run ${trainer} seed ${seed} -> ${dir}"
    "$PYTHON" train.py \
        --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "configs/datasets/${DATASET}.yaml" \
        --config-file "configs/trainers/${trainer}/${CFG}.yaml" \
        --source-domains "$SOURCE" --target-domains "$TARGET" \
        --output-dir "$dir" \
        "$@"
}

# run_eval_only TRAINER SEED [KEY VALUE ...]: evaluation without training (zero-shot CLIP).
run_eval_only() {
    local trainer="$1" seed="$2"
    shift 2
    run_train "$trainer" "$seed" --eval-only "$@"
}

print_table() {
    "$PYTHON" tools/parse_results.py "${OUTPUT}/${DATASET}" "$@"
}
