"""Evaluation of a checkpoint on a data spec: texts x motions score matrix -> retrieval metrics.

As the paper's All protocol: every captioned motion of the spec once, with its first
caption, first 224 frames (row i = caption of motion i, column j = motion j).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from inference_server.errors import DataError


def score_items(retriever, items, batch_size: int = 64, ordered: bool = True) -> np.ndarray:
    """(n, n) scores of the items' first captions against their motions; ordered: captions of
    several steps get the order-aware score, as search gives them (False: plain pooled scores)."""
    captions = [item.captions[0] for item in items]
    patches = retriever.embed_motions([item.motion for item in items], batch_size)
    if ordered:
        return retriever.score_texts(captions, patches, batch_size)
    return retriever.score_embeddings(retriever.embed_texts(captions, batch_size), patches, batch_size)


def contrast_accuracy(model_path: str | Path, device: str = "auto", ordered: bool = True) -> dict:
    """The checkpoint's minimal-pair accuracy (data/contrast.py): side and order pairs, % of
    captions (t2m) and clips (m2t) that prefer their own twin; chance 50. ordered: as score_items."""
    from inference_server.data.contrast import contrast_pairs, pair_accuracy
    from inference_server.retriever import Retriever
    pairs = contrast_pairs()
    scores = score_items(Retriever.load(model_path, device), [item for pair in pairs for item in pair],
                         ordered=ordered)
    return pair_accuracy(scores, [first.labels["kind"] for first, _ in pairs])


def read_nsim_ids(path: str | Path, items) -> list[int]:
    """TMR's dissimilar list: motion ids (one per line) -> row indices of the items."""
    rows = {item.id: row for row, item in enumerate(items)}
    try:
        ids = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as error:
        raise DataError(f"{path}: cannot read the nsim id list: {error}") from error
    missing = [motion_id for motion_id in ids if motion_id not in rows]
    if missing:
        raise DataError(f"{path}: {len(missing)} ids not in the data, e.g. {missing[:3]}")
    return [rows[motion_id] for motion_id in ids]


def evaluate(model_path: str | Path, spec: str, protocol: str = "all", device: str = "auto",
             batch_size: int = 64, nsim_file: str | None = None, threshold: float | None = None,
             progress: bool = False, ordered: bool = True) -> dict:
    """metrics.retrieval_metrics of the checkpoint on the spec, plus "protocol", "data", "model";
    ordered: captions of several steps scored order-aware, as search does (score_items)."""
    from inference_server.data import load_spec
    from inference_server.metrics import DEFAULT_THRESHOLD, retrieval_metrics
    from inference_server.retriever import Retriever
    dataset = load_spec(spec, progress=progress)
    items = [item for item in dataset.items if item.captions]
    if len(items) < 2:
        raise DataError(f"{spec}: {len(items)} captioned motions; evaluation needs at least 2")
    retriever = Retriever.load(model_path, device)
    scores = score_items(retriever, items, batch_size, ordered)
    captions = [item.captions[0] for item in items]
    nsim_ids = read_nsim_ids(nsim_file, items) if nsim_file else None
    if protocol == "dissimilar" and nsim_ids is None:
        raise DataError("protocol 'dissimilar' needs --nsim FILE (motion ids, one per line)")
    result = retrieval_metrics(scores, protocol, captions=captions, nsim_ids=nsim_ids,
                               threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
    result.update(protocol=protocol, data=spec, model=retriever.name, fingerprint=retriever.fingerprint,
                  skipped=len(dataset.skipped), uncaptioned=len(dataset.items) - len(items), ordered=ordered)
    return result
