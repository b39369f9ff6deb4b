"""Training speed per preset on this machine: samples/s of the trainer's own step.

Each preset trains for --steps steps (after --warmup steps not timed) on real training
batches (synthetic clips -> angles -> random crops and captions, the MLM loss on 16
captions, AdamW over the trainable parameters), exactly the step `t2m train` runs.
Each entry is PRESET[:PRECISION] (fp32 or bf16, the forward pass under bf16 autocast as
`t2m train --precision bf16` runs it). Writes JSON (default bench/results/train_speed.json).

Usage: bench/train_speed.py [--presets tiny cpu cpu:bf16] [--batch-size 64] [--steps 4] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(preset: str, precision: str, batch_size: int, steps: int, warmup: int) -> dict:
    import numpy as np
    import torch

    from inference_server.data import load_spec
    from inference_server.device import autocast_enabled
    from inference_server.jami import PART_CHANNEL_INDEX
    from inference_server.model.colbert import MotionColBert
    from inference_server.model.presets import get_preset
    from inference_server.train import TrainOptions, build_optimizer, prepare_training, sample_batch

    torch.manual_seed(0)
    options = TrainOptions(data="synthetic:128:0", out="-", preset=preset, batch_size=batch_size).resolved()
    model = MotionColBert.build(get_preset(preset), PART_CHANNEL_INDEX, mask_stopwords=True).train()
    optimizer = build_optimizer(model, options)
    items, _ = prepare_training(load_spec("synthetic:128:0").items, options.mirror_prob)
    rng = np.random.default_rng(0)
    autocast = autocast_enabled(precision, torch.device("cpu"))
    timings = []
    for step in range(warmup + steps):
        started = time.perf_counter()
        indices = rng.choice(len(items), batch_size, replace=False)
        angles, captions, positives = sample_batch(items, indices, rng, options.mirror_prob)
        tokens = model.text.tokenize(captions)
        masked, labels = model.text.mask_tokens(tokens.input_ids[:16], tokens.special_mask[:16])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(torch.from_numpy(angles), tokens.input_ids, tokens.attention_mask, tokens.valid_mask,
                        masked, tokens.attention_mask[:16], labels, torch.from_numpy(positives))
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= warmup:
            timings.append(time.perf_counter() - started)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"samples_per_s": round(batch_size * len(timings) / sum(timings), 2),
            "step_s": [round(t, 3) for t in timings], "batch_size": batch_size, "precision": precision,
            "parameters": sum(p.numel() for p in model.parameters()), "trainable_parameters": trainable}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu", "cpu:bf16"], metavar="PRESET[:PRECISION]")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_speed.json")
    args = parser.parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                           "torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"},
               "presets": {}}
    for entry in args.presets:
        preset, _, precision = entry.partition(":")
        results["presets"][entry] = measure(preset, precision or "fp32", args.batch_size, args.steps, args.warmup)
        print(f"{entry}: {results['presets'][entry]['samples_per_s']} samples/s", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
