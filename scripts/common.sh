# Shared by every script under scripts/: arguments, run folders, skip-finished, dry runs, tables.
#
#   bash scripts/<trainer>/main.sh [DATASET SOURCE TARGET] [SEED ...]
#   bash scripts/ipclip/<scenario>.sh [DATASET SOURCE] [SEED ...]
#   no arguments, or DATASET "toy": the synthetic benchmark with the tiny CLIP on CPU.
#
# Environment: DATA (dataset root; default ./data for the synthetic benchmark), OUTPUT (output root,
# default output), CFG (trainer config name: tiny for toy, vit_b16 otherwise), SEEDS (default
# "1 2 3"; arguments after the domains override it), PYTHON (default python), DRY_RUN=1 (list the runs
# and whether they are done, run nothing).
# IP-CLIP scripts plan and launch their runs with tools/launch.py: LAUNCHER (local, gpus or slurm;
# default local), WORKERS (local: runs at once), GPUS (gpus: e.g. 0,1,2,3) and LAUNCH_ARGS (more
# tools/launch.py flags, e.g. "--partition gpu --time 120") choose where the runs go.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python}"
OUTPUT="${OUTPUT:-output}"
DRY_RUN="${DRY_RUN:-0}"
RUNS_DONE=0
RUNS_TODO=0

# IP-CLIP's scenarios (trainers/ipclip/scenarios.py); configs/datasets/<dataset>_<scenario>.yaml
# holds a scenario's dataset settings.
SCENARIOS="target_specified target_free ownership authorization"

# The toy pair: trained on product-like photos, protected against line sketches.
TOY_SOURCE=photo
TOY_TARGET=sketch

# select_dataset DATASET: sets DATASET, CFG and DATA (toy defaults), checks the dataset config.
select_dataset() {
    DATASET="${1:-toy}"
    if [ "$DATASET" = "toy" ] || [ "$DATASET" = "toy_domains" ]; then
        DATASET=toy_domains
        CFG="${CFG:-tiny}"
        DATA="${DATA:-$REPO/data}"
    else
        CFG="${CFG:-vit_b16}"
        if [ -z "${DATA:-}" ] && [ "$DRY_RUN" != 1 ]; then
            echo "error: set DATA to the folder that holds the datasets (see README, section Datasets)" >&2
            exit 2
        fi
        DATA="${DATA:-/path/to/datasets}"
    fi
    if [ ! -f "configs/datasets/${DATASET}.yaml" ]; then
        echo "error: no dataset config configs/datasets/${DATASET}.yaml; available:" \
            "$(ls configs/datasets | grep -v -E "_(${SCENARIOS// /|})\.yaml$" | sed 's/\.yaml$//' \
                | tr '\n' ' ')" >&2
        exit 2
    fi
}

# parse_pair_args [DATASET SOURCE TARGET] [SEED ...]: the target-specified setting.
parse_pair_args() {
    select_dataset "${1:-toy}"
    if [ "$DATASET" = toy_domains ]; then
        SOURCE="${2:-$TOY_SOURCE}"
        TARGET="${3:-$TOY_TARGET}"
    elif [ $# -lt 3 ]; then
        echo "usage: $0 DATASET SOURCE TARGET [SEED ...]   (or no arguments for the synthetic benchmark)" >&2
        exit 2
    else
        SOURCE="$2"
        TARGET="$3"
    fi
    PAIR="${SOURCE}_${TARGET}"
    seeds_after 3 "$@"
}

# seeds_after N ARG ...: SEEDS from the arguments after the first N (else $SEEDS, else 1 2 3).
seeds_after() {
    local n="$1"
    shift
    if [ $# -gt "$n" ]; then
        shift "$n"
        SEEDS="$*"
    fi
    SEEDS="${SEEDS:-1 2 3}"
}

# parse_source_args [DATASET SOURCE] [SEED ...]: scenarios that need no target domain.
parse_source_args() {
    select_dataset "${1:-toy}"
    if [ "$DATASET" = toy_domains ]; then
        SOURCE="${2:-$TOY_SOURCE}"
    elif [ $# -lt 2 ]; then
        echo "usage: $0 DATASET SOURCE [SEED ...]   (or no arguments for the synthetic benchmark)" >&2
        exit 2
    else
        SOURCE="$2"
    fi
    seeds_after 2 "$@"
}

run_dir() {  # run_dir TRAINER SEED
    echo "${OUTPUT}/${DATASET}/$1/${CFG}/${PAIR}/seed$2"
}

is_finished() {  # is_finished DIR: results.json says the run finished
    [ -f "$1/results.json" ] && grep -q '"finished": true' "$1/results.json"
}

# run_train TRAINER SEED [FLAGS] [KEY VALUE ...]: train (resuming an interrupted run) unless finished.
run_train() {
    local trainer="$1" seed="$2"
    shift 2
    local dir
    dir="$(run_dir "$trainer" "$seed")"
    if is_finished "$dir"; then
        RUNS_DONE=$((RUNS_DONE + 1))
        echo "[done] ${trainer} ${PAIR} seed ${seed}: ${dir}"
        [ "$DRY_RUN" = 1 ] && return 0
        # train.py still looks (a few seconds): it skips the run if results.json holds this config
        # and stops with the differing keys if not, so that a stale result never reaches a table.
    else
        RUNS_TODO=$((RUNS_TODO + 1))
        if [ "$DRY_RUN" = 1 ]; then
            echo "[todo] ${trainer} ${PAIR} seed ${seed}: ${dir}"
            return 0
        fi
        echo "[run] ${trainer} ${PAIR} seed ${seed}: ${dir}"
    fi
    "$PYTHON" train.py \
        --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "${DATA_CFG_FILE:-configs/datasets/${DATASET}.yaml}" \
        --config-file "${CFG_FILE:-configs/trainers/${trainer}/${CFG}.yaml}" \
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

# launch SCENARIO [SOURCE[:TARGET] ...]: IP-CLIP and its CoOp reference through tools/launch.py, over
# SEEDS, for these experiments (the whole paper table of DATASET when none is given); it skips
# finished runs, resumes interrupted ones and ends with the table.
launch() {
    local scenario="$1"
    shift
    local args=("$scenario" --dataset "$DATASET" --config "$CFG" --data "$DATA" --output "$OUTPUT"
                --python "$PYTHON" --launcher "${LAUNCHER:-local}" --workers "${WORKERS:-1}")
    # shellcheck disable=SC2206
    args+=(--seeds $SEEDS)
    [ -n "${GPUS:-}" ] && args+=(--gpus "$GPUS")
    [ "$DRY_RUN" = 1 ] && args+=(--dry-run)
    [ $# -gt 0 ] && args+=(--pairs "$@")
    # shellcheck disable=SC2086
    exec "$PYTHON" tools/launch.py "${args[@]}" ${LAUNCH_ARGS:-}
}

# finish: the table, or in a dry run the count of runs done and to do.
finish() {
    if [ "$DRY_RUN" = 1 ]; then
        echo "Dry run: $((RUNS_DONE + RUNS_TODO)) runs, ${RUNS_DONE} done, ${RUNS_TODO} to do."
        return 0
    fi
    "$PYTHON" tools/parse_results.py "${OUTPUT}/${DATASET}" "$@"
}
