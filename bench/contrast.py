"""Minimal-pair accuracy of one checkpoint -> bench/results/contrast.json.

Side pairs ("waves the left hand" vs "... right hand", same body and timing) and order pairs
(A then B vs B then A) from inference_server/data/contrast.py: the % of captions (t2m) and
clips (m2t) that score their own twin higher; chance is 50. "accuracy" is scored as search
ranks (order-aware for captions of several steps), "accuracy_without_order_aware_scoring"
with plain pooled scores.

    python bench/contrast.py [--model CKPT] [--out bench/results/contrast.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from inference_server.default import MODEL_DIR
from inference_server.evaluate import contrast_accuracy
from inference_server.model import read_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder (default: the embedded default model)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default="bench/results/contrast.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = args.model or str(MODEL_DIR)
    accuracy = contrast_accuracy(model, args.device)
    plain = contrast_accuracy(model, args.device, ordered=False)
    result = {"model": model, "pooling": read_config(model)["model"]["pooling"], "accuracy": accuracy,
              "accuracy_without_order_aware_scoring": plain, "chance": 50.0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(accuracy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
