#!/usr/bin/env bash
# What only a GPU can check, in one go, on any CUDA machine with the requirements installed:
#   1. the CUDA-only tests (pytest -m cuda: the fp16 and amp paths on the device);
#   2. tools/benchmark.py at the paper's scale (amp, 8 + 8 images, Office-Home's 65 classes);
#   3. one short training run per scenario with its paper config (configs/trainers/IPCLIP/
#      vit_b16[_<scenario>].yaml, amp) on a random-weight ViT-B/16-shaped CLIP and the synthetic
#      benchmark at 224 px (1 epoch of a few steps);
# then a summary. Usage, from anywhere:
#
#   bash tools/gpu_check.sh            # everything, on cuda
#   DEVICE=cpu BATCH=2 bash tools/gpu_check.sh   # the same steps on the CPU (slow; fp32), to try the script
#
# Environment: DEVICE (cuda), SCENARIOS (all four), BATCH (8: images per stream), IMAGES_PER_CLASS (4: toy images per class
# and domain), WORK (a temporary folder: data, weights, outputs, logs), PYTHON (python).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"
BATCH="${BATCH:-8}"
IMAGES_PER_CLASS="${IMAGES_PER_CLASS:-4}"
WORK="${WORK:-$(mktemp -d -t ipclip_gpu_check.XXXXXX)}"
SCENARIOS="${SCENARIOS:-target_specified target_free ownership authorization}"
# Test sets per scenario, as the scenario scripts pass them (scripts/common.sh).
declare -A TEST_SETS=(
    [target_specified]="['authorized=source','unauthorized=target']"
    [target_free]="['authorized=source','{domain}=each']"
    [ownership]="['authorized=source','unauthorized=source+watermark']"
    [authorization]="['{domain}=each','{domain}_wm=each+watermark']"
)
mkdir -p "$WORK/logs"
declare -a SUMMARY=()
FAILED=0

# step NAME COMMAND...: run, log to $WORK/logs/NAME.log, record pass/fail and seconds.
step() {
    local name="$1" start rc
    shift
    echo "== $name"
    start=$(date +%s)
    "$@" >"$WORK/logs/$name.log" 2>&1
    rc=$?
    local took=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
        SUMMARY+=("PASS  $name (${took}s)")
    else
        SUMMARY+=("FAIL  $name (${took}s, exit $rc; log: $WORK/logs/$name.log)")
        FAILED=1
        tail -n 20 "$WORK/logs/$name.log"
    fi
}

if [ "$DEVICE" = "cuda" ]; then
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "error: no CUDA device visible to torch; run with DEVICE=cpu to try the script" >&2
        exit 2
    }
    PREC=amp
    "$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
    step cuda_tests "$PYTHON" -m pytest -q -m cuda tests
    step benchmark "$PYTHON" tools/benchmark.py --device cuda --prec amp --batch 8 --classes 65 \
        --json "$WORK/benchmark.json"
else
    PREC=fp32
    step benchmark "$PYTHON" tools/benchmark.py --device cpu --prec fp32 --models tiny-rn \
        --json "$WORK/benchmark.json"
fi

# A random-weight ViT-B/16-shaped CLIP as a state-dict file (MODEL.BACKBONE.NAME takes a path).
CLIP_FILE="$WORK/random_vit_b16.pt"
step random_clip "$PYTHON" -c "
import sys, torch
sys.path.insert(0, '.')
from trainers.clip_backbone import build_random_clip
torch.save(build_random_clip('vit-b16-shape').state_dict(), '$CLIP_FILE')"

USE_CUDA=True
[ "$DEVICE" = "cuda" ] || USE_CUDA=False
for scenario in $SCENARIOS; do
    config="configs/trainers/IPCLIP/vit_b16_${scenario}.yaml"
    [ -f "$config" ] || config="configs/trainers/IPCLIP/vit_b16.yaml"
    data_config="configs/datasets/toy_domains_${scenario}.yaml"
    [ -f "$data_config" ] || data_config="configs/datasets/toy_domains.yaml"
    target=photo
    [ "$scenario" = "target_specified" ] && target=sketch
    step "train_$scenario" "$PYTHON" train.py --root "$WORK/data" --seed 1 --trainer IPCLIP \
        --dataset-config-file "$data_config" --config-file "$config" \
        --source-domains photo --target-domains "$target" --output-dir "$WORK/out/$scenario" \
        MODEL.BACKBONE.NAME "$CLIP_FILE" INPUT.SIZE "(224, 224)" OPTIM.MAX_EPOCH 1 \
        DATASET.TOY.IMAGES_PER_CLASS "$IMAGES_PER_CLASS" DATALOADER.TRAIN_X.BATCH_SIZE "$BATCH" \
        DATALOADER.NUM_WORKERS 2 TRAINER.IPCLIP.PREC "$PREC" TRAINER.IPCLIP.SCENARIO "$scenario" \
        DATASET.TEST_SETS "${TEST_SETS[$scenario]}" TEST.FINAL_MODEL last_step USE_CUDA "$USE_CUDA"
done

echo
echo "================ gpu_check summary ($DEVICE, work folder $WORK) ================"
printf '%s\n' "${SUMMARY[@]}"
if [ -f "$WORK/benchmark.json" ]; then
    "$PYTHON" - "$WORK/benchmark.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
rows = data.get("rows", data) if isinstance(data, dict) else data
print("benchmark:")
for row in rows if isinstance(rows, list) else []:
    print("  ", {k: v for k, v in row.items()})
EOF
fi
for scenario in $SCENARIOS; do
    result="$WORK/out/$scenario/results.json"
    [ -f "$result" ] || continue
    "$PYTHON" - "$result" "$scenario" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
last = r["epochs"][-1]["train"] if r.get("epochs") else {}
final = {name: round(v["accuracy"], 2) for name, v in r.get("final", {}).items()}
print(f"train {sys.argv[2]}: finished={r.get('finished')} wall {r.get('wall_time_s', 0):.0f}s "
      f"loss {last.get('loss')} test accuracy {final}")
EOF
done
exit "$FAILED"
