"""MaxSim vs global pooling, side by side -> bench/results/quality.json.

Both poolings are trained with the same encoders, data, budget and seed, selected on
validation, and evaluated on held-out test data (protocol `all`: strict diagonal, ties
averaged; first caption and first 224 frames of each motion):
- synthetic: train/val = synthetic:N:SEED @train/@val, test = synthetic:M:99 (other seed);
- bandai: train/val/test = the Bandai-Namco splits by take;
- contrast (synthetic runs only): minimal pairs that differ in side or order only
  (inference_server/data/contrast.py): % of captions / clips that prefer their own twin.
It also measures training samples/s on CPU for the `tiny` preset (one short epoch).

The default budget (preset `test`: 2-layer ViT + MiniLM, d=32) runs in about 15 minutes on
2 CPU cores; `--preset tiny --epochs 30` (or a GPU: `--device cuda`) for real numbers.

    python bench/quality.py [--preset test] [--epochs 8] [--synthetic 400] [--synthetic-test 200]
                            [--bandai SPEC | --no-bandai] [--no-speed] [--out bench/results/quality.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from inference_server.evaluate import contrast_accuracy, evaluate
from inference_server.train import TrainOptions, train

# the shared data folder next to the checkout (../shared/data)
DEFAULT_BANDAI = f"bandai:{Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'bandai-namco'}"
POOLINGS = ("maxsim", "global")
REPORTED = ("R@1", "R@5", "R@10", "MedR")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="test", help="model preset of the quality runs (default test)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, help="initial temperature of the logit scale (default: preset's)")
    parser.add_argument("--dim", type=int, help="width of the token/patch space (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", type=int, default=400, help="synthetic motions (train+val splits)")
    parser.add_argument("--synthetic-test", type=int, default=200, help="held-out synthetic test motions")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--bandai", default=DEFAULT_BANDAI, metavar="SPEC",
                        help="the real-data spec with train/val/test splits (default: the Bandai-Namco folder)")
    parser.add_argument("--no-bandai", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="skip the tiny-preset samples/s run")
    parser.add_argument("--speed-motions", type=int, default=100, help="synthetic motions of the speed run")
    parser.add_argument("--text-model", help="text model name or folder instead of the preset's")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--work", help="keep the runs' checkpoints here (default: a temporary folder)")
    parser.add_argument("--out", default="bench/results/quality.json")
    return parser.parse_args(argv)


def datasets(args) -> dict[str, dict]:
    chosen = {}
    if not args.no_synthetic:
        chosen["synthetic"] = {"train": f"synthetic:{args.synthetic}:{args.seed}",
                               "test": f"synthetic:{args.synthetic_test}:99"}
    if not args.no_bandai:
        chosen["bandai"] = {"train": args.bandai, "test": f"{args.bandai}@test"}
    return chosen


def short(metrics: dict) -> dict:
    return {direction: {key: round(metrics[direction][key], 2) for key in REPORTED} for direction in ("t2m", "m2t")}


def run_pooling(args, name: str, specs: dict, pooling: str, work: Path) -> dict:
    started = time.perf_counter()
    result = train(TrainOptions(data=specs["train"], out=str(work / f"{name}-{pooling}"), preset=args.preset,
                                pooling=pooling, epochs=args.epochs, batch_size=args.batch_size,
                                seed=args.seed, device=args.device, text_model=args.text_model,
                                temperature=args.temperature, dim=args.dim))
    seconds = time.perf_counter() - started
    test = evaluate(result["checkpoint"], specs["test"], "all", args.device)
    print(f"{name} {pooling}: test t2m R@5 {test['t2m']['R@5']:.2f}, m2t R@5 {test['m2t']['R@5']:.2f} "
          f"({seconds:.0f} s)", file=sys.stderr)
    contrast = {"contrast": contrast_accuracy(result["checkpoint"], args.device)} if name == "synthetic" else {}
    return {"test": short(test), "test_n": test["n"], **contrast, "best_val": short(result["best_val"]),
            "train_motions": result["train_motions"], "val_motions": result["val_motions"],
            "train_seconds": round(seconds, 1), "train_samples_per_s": round(result["samples_per_s"], 2),
            "final_logit_scale": result["final_logit_scale"]}


def measure_speed(args, work: Path) -> dict:
    """Training samples/s of the tiny preset on CPU over one short epoch (first step included)."""
    batch = 16
    result = train(TrainOptions(data=f"synthetic:{args.speed_motions}:{args.seed}", out=str(work / "speed-tiny"),
                                preset="tiny", epochs=1, batch_size=batch, seed=args.seed, device="cpu",
                                text_model=args.text_model))
    return {"preset": "tiny", "device": "cpu", "threads": torch.get_num_threads(), "batch_size": batch,
            "train_motions": result["train_motions"], "samples_per_s": round(result["samples_per_s"], 2)}


def markdown(results: dict) -> str:
    lines = ["| data | pooling | t2m R@1 | t2m R@5 | t2m R@10 | m2t R@1 | m2t R@5 | m2t R@10 | n |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, entry in results["datasets"].items():
        for pooling in POOLINGS:
            test = entry[pooling]["test"]
            cells = [f"{test[d][k]:.2f}" for d in ("t2m", "m2t") for k in ("R@1", "R@5", "R@10")]
            lines.append(f"| {name} | {pooling} | " + " | ".join(cells) + f" | {entry[pooling]['test_n']} |")
    contrast = [(p, entry[p]["contrast"]) for entry in results["datasets"].values() for p in POOLINGS
                if "contrast" in entry[p]]
    if contrast:
        lines += ["", "| minimal pairs | pooling | t2m % | m2t % | pairs |", "|---|---|---:|---:|---:|"]
        lines += [f"| {kind} | {pooling} | {acc['t2m']:.1f} | {acc['m2t']:.1f} | {acc['pairs']} |"
                  for pooling, kinds in contrast for kind, acc in kinds.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="t2m-quality-"))
    started = time.perf_counter()
    results = {"config": {key: value for key, value in vars(args).items() if key not in ("out", "work")},
               "protocol": "all", "selection": "best validation mean R@5 (t2m, m2t)", "datasets": {}}
    try:
        for name, specs in datasets(args).items():
            results["datasets"][name] = {**specs, **{p: run_pooling(args, name, specs, p, work) for p in POOLINGS}}
        if not args.no_speed:
            results["speed"] = measure_speed(args, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    results["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if results["datasets"]:
        print(markdown(results))
    if "speed" in results:
        print(f"\ntiny preset training on CPU: {results['speed']['samples_per_s']} samples/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
