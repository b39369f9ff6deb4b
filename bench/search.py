#!/usr/bin/env python3
"""Benchmark the motion index: exact vs two-stage MaxSim search, and the patch-store options.

    python bench/search.py                  # 1k, 10k, 50k synthetic -> bench/results/search.{json,png}
    python bench/search.py --sizes 1000,10000  # skip the 50k case (~2 min less)
    python bench/search.py --model CKPT     # + R@10 of fp32/fp16/int8/pq on real held-out data
    python bench/search.py --sizes 1000 --model inference_server/default/model \
        --data bandai:../shared/data/bandai-namco@test --data synthetic:4000:0@test

1. Synthetic clustered embeddings (P=196, d=128; inference_server/index/synthetic.py) at
   each size: index build time (centroids, assignment, encoding), exact brute force and
   the fast path: p50/p99 single-query latency, batched throughput, recall@10 of the fast
   path against exact, bytes per motion of each storage. At the smallest size also the
   top-10 overlap of int8/pq exact search with fp32 exact search.
2. With --model: every motion of each --data (default: Bandai-Namco held-out takes) embedded
   once, stored as fp32, fp16, int8 and pq; text->motion R@1/5/10 with every caption as
   a query (rank of its motion among all, ties averaged) and the square first-caption
   `all` protocol, per storage, plus the fast path's recall on these real embeddings.
Timings use --threads torch threads (default 2, the development machine) on --device.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, whatever the environment has installed
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATA = f"bandai:{ROOT.parent / 'shared' / 'data' / 'bandai-namco'}@test"  # ../shared/data
STORAGES = ("fp32", "fp16", "int8", "pq")
K = 10


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000", help="library sizes (comma separated)")
    parser.add_argument("--queries", type=int, default=200, help="queries timed on the fast path")
    parser.add_argument("--truth-queries", type=int, default=40,
                        help="queries also run exactly (latency of exact, recall of fast)")
    parser.add_argument("--exact-seconds", type=float, default=60.0,
                        help="stop the exact queries of a size after this long (at least 10 queries run)")
    parser.add_argument("--batch", type=int, default=32, help="queries per batch for throughput")
    parser.add_argument("--model", help="checkpoint for the real-data storage evaluation")
    parser.add_argument("--data", action="append",
                        help=f"data spec of a real evaluation (repeatable; default {DEFAULT_DATA})")
    parser.add_argument("--pq-subspaces", type=int, default=56, help="pq: one-byte codes per patch")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--name", default="search", help="results file names: NAME.json and NAME.png")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="t2m-bench-search-"))
    results = {"machine": machine(args), "synthetic": [], "real": []}
    try:
        for position, size in enumerate(int(s) for s in args.sizes.split(",") if s):
            case = synthetic_case(size, args, work / f"n{size}", storages=position == 0)
            results["synthetic"].append(case)
            print(json.dumps(case), file=sys.stderr)
        specs = (args.data or [DEFAULT_DATA]) if args.model else []
        for position, spec in enumerate(specs):
            results["real"].append(real_storage_eval(args, spec, work / f"real{position}"))
            print(json.dumps(results["real"][-1]), file=sys.stderr)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / f"{args.name}.png")
    print(json.dumps(summary(results), indent=2))
    return results


def machine(args) -> dict:
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": args.threads, "device": args.device,
            "torch": torch.__version__}
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ---------------------------------------------------------------- synthetic

def synthetic_case(size: int, args, folder: Path, storages: bool) -> dict:
    from numpy.lib.format import open_memmap

    from inference_server.index import MotionIndex, store
    from inference_server.index.build import atomic_folder, write_index
    from inference_server.index.synthetic import ClusteredSpace

    store.FAST_PATH_MIN_MOTIONS = 0  # measure the two-stage path at every size (auto: above 2048)
    space = ClusteredSpace()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    raw = open_memmap(folder / "raw.npy", mode="w+", dtype=np.float16, shape=(size, space.patches, space.dim))
    space.embeddings(size, out=raw)
    generated = time.perf_counter() - started
    metas = [{"motion_id": f"m{row}", "name": f"m{row}", "duration": 11.2, "fps": 20.0} for row in range(size)]
    model = {"name": "synthetic", "fingerprint": "synthetic", "dim": space.dim}
    started = time.perf_counter()
    with atomic_folder(folder / "fp16") as tmp:
        quantizers = write_index(tmp, raw, metas, None, model, "fp16")
    build_seconds = time.perf_counter() - started
    index = MotionIndex.load(folder / "fp16", device=args.device)
    queries = space.queries(max(args.queries, args.truth_queries), size)
    exact_lat, exact_hits = timed(index, queries[:args.truth_queries], exact=True, budget=args.exact_seconds)
    truth = queries[:len(exact_hits)]
    fast_lat, fast_hits = timed(index, queries, exact=False)
    recalls = [len({h.row for h in fast} & {h.row for h in exact}) / K
               for fast, exact in zip(fast_hits, exact_hits)]
    case = {"motions": size, "generate_seconds": round(generated, 2), "build_seconds": round(build_seconds, 2),
            "centroids": len(quantizers.centroids),
            "exact": latency_stats(exact_lat) | {"batched_qps": throughput(index, truth, min(args.batch, len(truth)),
                                                                           True)},
            "fast": latency_stats(fast_lat) | {"batched_qps": throughput(index, queries, args.batch, False)},
            "fast_recall_at_10": {"mean": round(float(np.mean(recalls)), 4), "min": float(np.min(recalls)),
                                  "queries": len(recalls)},
            "bytes_per_motion": bytes_per_motion(space, args.pq_subspaces),
            "index_bytes_per_motion_fp16": round(folder_size(folder / "fp16") / size)}
    if index.device.type != "cpu":
        case["cpu_agreement_at_10"] = cpu_agreement(folder / "fp16", truth, exact_hits)
    if storages:
        case["storage_overlap_at_10"] = storage_overlap(index, raw, metas, model, quantizers, truth, folder, args)
    del index
    shutil.rmtree(folder, ignore_errors=True)
    return case


def cpu_agreement(folder: Path, queries, device_hits) -> float:
    """Top-10 overlap of exact search on the accelerator with exact search on the CPU."""
    from inference_server.index import MotionIndex

    cpu = MotionIndex.load(folder, device="cpu").search_batch(queries, K, exact=True)
    return round(float(np.mean([len({h.row for h in a} & {h.row for h in b}) / K
                                for a, b in zip(cpu, device_hits)])), 4)


def timed(index, queries, exact: bool, budget: float = float("inf")) -> tuple[list[float], list]:
    """Per-query seconds and hits; stops once `budget` seconds are spent (after at least 10 queries)."""
    for query in queries[:3]:  # warm caches and lazy initialisation
        index.search(query, K, exact=exact)
    seconds, hits = [], []
    for query in queries:
        if len(seconds) >= 10 and sum(seconds) > budget:
            break
        started = time.perf_counter()
        hits.append(index.search(query, K, exact=exact))  # results come back to the host: synchronised
        seconds.append(time.perf_counter() - started)
    return seconds, hits


def throughput(index, queries, batch: int, exact: bool) -> float:
    batch_queries = (queries * (batch // max(1, len(queries)) + 1))[:batch]
    started = time.perf_counter()
    index.search_batch(batch_queries, K, exact=exact)
    return round(len(batch_queries) / (time.perf_counter() - started), 2)


def latency_stats(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3), "queries": len(ms)}


def bytes_per_motion(space, pq_subspaces: int) -> dict:
    """Patch store + the fast path's centroid codes (2 bytes a patch), per motion, per storage."""
    from inference_server.index.quantize import make_codec

    return {storage: make_codec(storage, space.patches, space.dim, pq_subspaces).bytes_per_motion() + 2 * space.patches
            for storage in STORAGES}


def storage_overlap(reference, raw, metas, model, quantizers, queries, folder: Path, args) -> dict:
    """Top-10 overlap of exact search on each storage with exact search on fp32 (same embeddings)."""
    from inference_server.index import MotionIndex
    from inference_server.index.build import atomic_folder, train_quantizers, write_index

    indexes = {}
    for storage in STORAGES:
        with atomic_folder(folder / storage) as tmp:
            write_index(tmp, raw, metas, None, model, storage, quantizers=train_quantizers(
                raw, storage, args.pq_subspaces, centroids=quantizers.centroids))
        indexes[storage] = MotionIndex.load(folder / storage, device=args.device)
    truth = indexes["fp32"].search_batch(queries, K, exact=True)
    overlap = {}
    for storage, index in indexes.items():
        found = index.search_batch(queries, K, exact=True)
        overlap[storage] = round(float(np.mean([len({h.row for h in a} & {h.row for h in b}) / K
                                                for a, b in zip(found, truth)])), 4)
    return overlap


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


# ---------------------------------------------------------------- real data

def real_storage_eval(args, spec: str, folder: Path) -> dict:
    """R@k of each storage on a real held-out set with a trained checkpoint."""
    from inference_server.data import load_spec
    from inference_server.index import MotionIndex
    from inference_server.index.build import atomic_folder, train_quantizers, write_index
    from inference_server.model import read_config
    from inference_server.retriever import Retriever

    dataset = load_spec(spec)
    items = [item for item in dataset.items if item.captions]
    retriever = Retriever.load(args.model, device=args.device)
    embeddings = retriever.embed_motions([item.motion for item in items])
    captions = [(row, caption) for row, item in enumerate(items) for caption in item.captions]
    texts = retriever.embed_texts([caption for _, caption in captions])
    metas = [{"motion_id": item.id, "name": item.name, "duration": item.motion.duration, "fps": item.motion.fps}
             for item in items]
    model = {"name": retriever.name, "fingerprint": retriever.fingerprint, "dim": retriever.dim}
    first_caption = [next(i for i, (row, _) in enumerate(captions) if row == r) for r in range(len(items))]
    training = read_config(args.model).get("training", {})
    result = {"data": spec, "model": str(args.model), "model_name": retriever.name,
              "model_training": {key: training.get(key) for key in ("trained", "epoch")} |
              {"data": training.get("options", {}).get("data")},
              "motions": len(items), "caption_queries": len(texts), "storages": {}}
    centroids = reference = None
    for storage in STORAGES:
        quantizers = train_quantizers(embeddings, storage, args.pq_subspaces, centroids=centroids)
        centroids = quantizers.centroids
        with atomic_folder(folder / storage) as tmp:
            write_index(tmp, embeddings, metas, None, model, storage, quantizers=quantizers)
        index = MotionIndex.load(folder / storage, device=args.device)
        scores = score_matrix(index, texts)
        reference = scores if reference is None else reference  # STORAGES starts with fp32
        result["storages"][storage] = {
            "bytes_per_motion": index.manifest["bytes_per_motion"],
            "all_captions": caption_recalls(scores, [row for row, _ in captions]),
            "first_caption_all": square_metrics(scores[first_caption]),
            "vs_fp32": fidelity(scores, reference)}
        if storage == "fp16":
            result["fast_path_recall_at_10"] = forced_fast_recall(index, texts)
    return result


def score_matrix(index, texts) -> np.ndarray:
    scores = np.zeros((len(texts), len(index)), np.float32)
    for row, hits in enumerate(index.search_batch(texts, len(index), exact=True, align=False)):
        for hit in hits:
            scores[row, hit.row] = hit.score
    return scores


def fidelity(scores: np.ndarray, reference: np.ndarray) -> dict:
    """How far a storage's score matrix is from fp32's: mean |score error|, top-10 overlap."""
    top = np.argsort(-scores, axis=1)[:, :K]
    truth = np.argsort(-reference, axis=1)[:, :K]
    overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(top, truth)])
    return {"score_mae": round(float(np.abs(scores - reference).mean()), 6), "overlap_at_10": round(float(overlap), 4)}


def caption_recalls(scores: np.ndarray, targets: list[int]) -> dict:
    """Text->motion with every caption as a query: rank = higher + half the ties (0-based)."""
    truth = scores[np.arange(len(targets)), targets][:, None]
    ranks = (scores > truth).sum(1) + 0.5 * ((scores == truth).sum(1) - 1)
    return {f"R@{k}": round(float(100 * np.mean(ranks < k)), 3) for k in (1, 5, 10)} | \
        {"MedR": float(np.median(ranks) + 1)}


def square_metrics(scores: np.ndarray) -> dict:
    from inference_server.metrics import retrieval_metrics

    return {key: round(value, 3) for key, value in retrieval_metrics(scores, "all")["t2m"].items()}


def forced_fast_recall(index, texts) -> dict:
    """Recall@10 of the two-stage path vs exact on real embeddings (forced even on a small library)."""
    from inference_server.index.search import as_query, fast_search

    recalls = []
    exact = index.search_batch(texts, K, exact=True)
    for text, truth in zip(texts, exact):
        query = as_query(text, index.store.dim, index.device)
        _, rows = fast_search(index.store, index.candidates, query, K, index.fast_path)
        recalls.append(len(set(rows.tolist()) & {hit.row for hit in truth}) / K)
    return {"mean": round(float(np.mean(recalls)), 4), "min": float(np.min(recalls)), "queries": len(recalls)}


# ---------------------------------------------------------------- report

def summary(results: dict) -> dict:
    rows = []
    for case in results["synthetic"]:
        rows.append({"motions": case["motions"], "exact_p50_ms": case["exact"]["p50_ms"],
                     "fast_p50_ms": case["fast"]["p50_ms"], "fast_p99_ms": case["fast"]["p99_ms"],
                     "recall@10": case["fast_recall_at_10"]["mean"], "build_s": case["build_seconds"]})
    out = {"synthetic": rows, "bytes_per_motion": results["synthetic"][0]["bytes_per_motion"]
           if results["synthetic"] else None}
    for real in results["real"]:
        out[f"R@10 {real['data']}"] = {storage: value["all_captions"]["R@10"]
                                       for storage, value in real["storages"].items()}
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, storage) = plt.subplots(1, 2, figsize=(11, 4.2))
    cases = results["synthetic"]
    sizes = [case["motions"] for case in cases]
    for mode, style in (("exact", "o-"), ("fast", "s-")):
        latency.plot(sizes, [case[mode]["p50_ms"] for case in cases], style, label=f"{mode} p50")
        latency.plot(sizes, [case[mode]["p99_ms"] for case in cases], style, alpha=0.4, label=f"{mode} p99")
    for case in cases:
        latency.annotate(f"recall@10 {case['fast_recall_at_10']['mean']:.3f}",
                         (case["motions"], case["fast"]["p50_ms"]), textcoords="offset points", xytext=(-20, 8),
                         fontsize=8)
    threads = results["machine"]["torch_threads"]
    latency.set(xscale="log", yscale="log", xlabel="motions in the library", ylabel="ms per query",
                title=f"MaxSim search ({results['machine']['device']}, {threads} thread{'s' * (threads != 1)})")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend(fontsize=8)
    if cases:
        per_motion = cases[0]["bytes_per_motion"]
        bars = storage.bar(list(per_motion), [value / 1024 for value in per_motion.values()], color="#7aa6c2")
        real = results["real"][0]["storages"] if results["real"] else {}
        for bar, name in zip(bars, per_motion):
            label = f"R@10 {real[name]['all_captions']['R@10']:.2f}" if name in real else ""
            storage.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                             textcoords="offset points", xytext=(0, 3), fontsize=8)
        storage.set(ylabel="KiB per motion (196 x 128 patches)", title="patch store per motion")
        if real:
            storage.set_xlabel(f"text->motion R@10 on {results['real'][0]['data'].split('/')[-1]}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
