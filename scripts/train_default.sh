#!/usr/bin/env bash
# Train the embedded default model exactly as shipped in inference_server/default/model:
# MotionColBert at the `cpu` preset with hybrid scoring (MaxSim + a pooled term, MaxSim's
# alignments), stop words masked, the side-grounding loss ("left hand" aligns to the left arm),
# on a weighted mix of real mocap (Bandai-Namco, DeepMimic) and the synthetic generators. Bandai-Namco data is CC BY-NC 4.0, so the weights are for
# non-commercial use (see MODEL_CARD.md). Ran on this project's 2-core CPU in 35 min (18 epochs,
# 23-28 samples/s: the forward pass in bf16 on the CPU's AMX units, `--precision bf16`; a CPU
# without native bf16 refuses it: use `PRECISION=fp32`); `DEVICE=cuda` on a GPU.
#
#   scripts/train_default.sh RUN_DIR [SHARED_DATA_DIR]
#
# The model shipped as `--model permissive` (inference_server/default/permissive) is trained
# without Bandai: see its MODEL_CARD.md.
set -euo pipefail
RUN=${1:?run folder}
DATA=${2:-../shared/data}
DEVICE=${DEVICE:-cpu}
PRECISION=${PRECISION:-bf16}
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m inference_server train \
    --data "bandai:$DATA/bandai-namco=3" --data synthetic:2000:0:rich=1.5 --data deepmimic=0.15 \
    --data synthetic:1000:0=1.5 \
    --preset cpu --batch-size 32 --temperature 0.03 --seed 0 --pooling hybrid --mask-stopwords --epochs 18 \
    --grounding-weight 0.5 --precision "$PRECISION" --device "$DEVICE" --no-progress --out "$RUN" --json
"$PYTHON" scripts/pack_default.py "$RUN/best" inference_server/default/model \
    --name motioncolbert-cpu-hybrid-grounded \
    --licence "CC BY-NC 4.0 (trained on Bandai-Namco data): research and non-commercial use only"
