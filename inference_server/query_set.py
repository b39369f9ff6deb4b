"""Hand-written animator queries judged against the real mocap library, and their metrics.

The library (`real_library`) is every Bandai-Namco clip under SHARED/bandai-namco, the
DeepMimic humanoid clips (when pybullet_data is installed) and the mirrored copy of each
(id + "~mirror"). Every item carries labels {"content", "style", "dataset", "side",
"mirrored"}: DeepMimic contents are "deepmimic:<clip>" with style None; side-specific
contents swap in the mirror (wave-left-hand <-> wave-right-hand, ...), and the side of a
one-sided clip ("bye" waves the right hand, "kick" kicks with the right leg, "respond"
raises the left hand) flips. The queries (bench/queries/animator_queries.jsonl) name the
relevant contents, optionally styles and a side; see bench/queries/README.md.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from inference_server.errors import DataError

MIRROR_SUFFIX = "~mirror"
DEEPMIMIC_PREFIX = "deepmimic:"
# content -> its mirror image's content (both directions)
_PAIRS = [("wave-left-hand", "wave-right-hand"), ("raise-up-left-hand", "raise-up-right-hand"),
          ("walk-turn-left", "walk-turn-right"), ("walk-left", "walk-right")]
CONTENT_MIRROR = {a: b for a, b in _PAIRS} | {b: a for a, b in _PAIRS}
# side of the original clip for one-sided contents (checked on the clips, see bandai.py / deepmimic.py)
CONTENT_SIDE = {
    "wave-left-hand": "left", "wave-right-hand": "right",
    "raise-up-left-hand": "left", "raise-up-right-hand": "right",
    "walk-turn-left": "left", "walk-turn-right": "right",
    "walk-left": "left", "walk-right": "right",
    "bye": "right", "kick": "right", "respond": "left",
    DEEPMIMIC_PREFIX + "kick": "right", DEEPMIMIC_PREFIX + "punch": "right",
}
OTHER_SIDE = {"left": "right", "right": "left", None: None}
SIDES = ("left", "right")
DEFAULT_QUERIES = Path(__file__).resolve().parents[1] / "bench" / "queries" / "animator_queries.jsonl"


@dataclass(frozen=True)
class Query:
    id: str
    query: str
    contents: tuple[str, ...]
    styles: tuple[str, ...] | None  # None: any style
    side: str | None  # None: any side
    action: str

    def matches(self, labels: dict, content_only: bool = False) -> bool:
        """Is a clip with these labels relevant (content_only: ignore style and side)?"""
        if labels.get("content") not in self.contents:
            return False
        if content_only:
            return True
        if self.styles is not None and labels.get("style") not in self.styles:
            return False
        return self.side is None or labels.get("side") == self.side


# ---------------------------------------------------------------- library and labels


def original_labels(labels: dict) -> dict:
    """Reader labels -> query-set labels (content, style, dataset, side, mirrored)."""
    out = dict(labels)
    if "clip" in labels and "content" not in labels:  # DeepMimic reader: {"clip": name}
        out.update(content=DEEPMIMIC_PREFIX + labels["clip"], style=None, dataset="deepmimic")
    out["side"] = CONTENT_SIDE.get(out.get("content"))
    out["mirrored"] = False
    return out


def mirror_labels(labels: dict) -> dict:
    """Labels of the mirrored copy: side-specific content swapped, side flipped."""
    out = dict(labels)
    if "content" in labels:
        out["content"] = CONTENT_MIRROR.get(labels["content"], labels["content"])
    out["side"] = OTHER_SIDE[labels.get("side")]
    out["mirrored"] = not labels.get("mirrored", False)
    return out


def mirror_item(item):
    """The mirrored copy of a MotionItem (already given query-set labels), id + '~mirror'."""
    copy = item.mirrored()
    return replace(copy, id=item.id + MIRROR_SUFFIX, labels=mirror_labels(item.labels))


def with_mirrors(items: list) -> list:
    """Items relabelled for the query set, followed by their mirrored copies."""
    originals = [replace(item, labels=original_labels(item.labels)) for item in items]
    return originals + [mirror_item(item) for item in originals]


def real_library(shared_data_dir, progress: bool = False):
    """Bandai-Namco + DeepMimic (if pybullet_data is installed) + mirrored copies -> Dataset."""
    from inference_server.data import Dataset, load_spec
    root = Path(shared_data_dir)
    bandai = load_spec(f"bandai:{root / 'bandai-namco'}", progress=progress)
    items, skipped = list(bandai.items), list(bandai.skipped)
    if _has_pybullet_data():
        deepmimic = load_spec("deepmimic", progress=progress)
        items += deepmimic.items
        skipped += deepmimic.skipped
    return Dataset(with_mirrors(items), skipped, f"query-set library:{root}")


def library_labels(shared_data_dir, deepmimic: bool | None = None) -> list[dict]:
    """The labels of every real_library item, in the same order, without reading any motion.

    Reads only the Bandai cfg/*_label.txt and per-clip JSON files, and the DeepMimic file names.
    """
    from inference_server.data import bandai
    labels = []
    for folder in bandai.dataset_folders(Path(shared_data_dir) / "bandai-namco"):
        contents = bandai.read_labels(folder / "cfg" / "content_label.txt")
        styles = bandai.read_labels(folder / "cfg" / "style_label.txt")
        for path in sorted((folder / "data").glob("*.bvh")):
            dataset, content, style, take = bandai.clip_labels(path, contents, styles)
            labels.append({"content": content, "style": style, "dataset": dataset, "take": take})
    if _has_pybullet_data() if deepmimic is None else deepmimic:
        from inference_server.data import deepmimic as reader
        for path in sorted(p for p in reader.default_dir().iterdir() if p.name.startswith("humanoid3d_")):
            labels.append({"clip": reader.clip_name(path)})
    originals = [original_labels(entry) for entry in labels]
    return originals + [mirror_labels(entry) for entry in originals]


def _has_pybullet_data() -> bool:
    try:
        import pybullet_data  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- queries


def load_queries(path=DEFAULT_QUERIES) -> list[Query]:
    """Read and validate a JSONL query file; DataError names the file and line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: query file not found")
    queries, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            query = parse_query(line)
        except DataError as error:
            raise DataError(f"{path}:{number}: {error}") from None
        if query.id in seen:
            raise DataError(f"{path}:{number}: duplicate query id {query.id!r}")
        seen.add(query.id)
        queries.append(query)
    if not queries:
        raise DataError(f"{path}: no queries")
    return queries


def parse_query(line: str) -> Query:
    """One JSON line -> Query (DataError on bad JSON, missing or ill-typed fields)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise DataError("a line must be a JSON object")
    unknown = set(record) - {"id", "query", "relevant", "action"}
    if unknown:
        raise DataError(f"unknown field(s) {sorted(unknown)}")
    for key in ("id", "query", "action"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise DataError(f"field {key!r} must be a non-empty string")
    relevant = record.get("relevant")
    if not isinstance(relevant, dict):
        raise DataError("field 'relevant' must be an object with 'content' (and optional 'style', 'side')")
    unknown = set(relevant) - {"content", "style", "side"}
    if unknown:
        raise DataError(f"unknown field(s) in 'relevant': {sorted(unknown)}")
    contents = _string_list(relevant.get("content"), "relevant.content")
    styles = _string_list(relevant["style"], "relevant.style") if "style" in relevant else None
    side = relevant.get("side")
    if side is not None and side not in SIDES:
        raise DataError(f"relevant.side must be 'left' or 'right', not {side!r}")
    return Query(record["id"], record["query"], contents, styles, side, record["action"])


def _string_list(value, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise DataError(f"{name} must be a non-empty list of strings")
    return tuple(value)


def _labels_of(item) -> dict:
    return item if isinstance(item, dict) else item.labels


def relevance(queries: list[Query], items: list, content_only: bool = False) -> np.ndarray:
    """(Q, N) bool: is clip n relevant to query q (items: MotionItems or label dicts)."""
    labels = [_labels_of(item) for item in items]
    return np.array([[query.matches(entry, content_only) for entry in labels] for query in queries],
                    dtype=bool).reshape(len(queries), len(labels))


def action_relevance(queries: list[Query], items: list) -> np.ndarray:
    """(Q, N) bool: clip n has one of query q's contents (style and side ignored)."""
    return relevance(queries, items, content_only=True)


# ---------------------------------------------------------------- metrics

RECALL_KS = (1, 5, 10)
NDCG_K = 10
ACTION_K = 3


def query_metrics(scores, relevant, action_relevant) -> dict:
    """Metrics of a (Q, N) score matrix against (Q, N) relevance masks, with chance levels.

    Ties are broken uniformly at random and every figure is its exact expectation, so a
    constant score matrix gives exactly the chance level. R@k and action@3: % of queries
    with >= 1 relevant clip in the top k; nDCG@10: binary gains, ideal DCG from the number
    of relevant clips; MedR: median over queries of the (expected) rank of the first
    relevant clip; chance MedR: median over queries of (N + 1) / (r + 1).
    """
    scores, relevant, action_relevant = _check_inputs(scores, relevant, action_relevant)
    per_query = [_query_figures(row, rel, act) for row, rel, act in zip(scores, relevant, action_relevant)]
    chance = [_chance_figures(int(rel.sum()), int(act.sum()), scores.shape[1])
              for rel, act in zip(relevant, action_relevant)]
    result = {}
    for key in [f"R@{k}" for k in RECALL_KS] + [f"nDCG@{NDCG_K}", f"action@{ACTION_K}", "MedR"]:
        reduce = np.median if key == "MedR" else np.mean
        scale = 1.0 if key == "MedR" else 100.0
        result[key] = scale * float(reduce([figures[key] for figures in per_query]))
        result[f"{key} chance"] = scale * float(reduce([figures[key] for figures in chance]))
    result["n_queries"], result["n_clips"] = int(scores.shape[0]), int(scores.shape[1])
    result["relevant_per_query"] = {"min": int(relevant.sum(1).min()), "median": float(np.median(relevant.sum(1))),
                                    "max": int(relevant.sum(1).max())}
    return result


def _check_inputs(scores, relevant, action_relevant):
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    action_relevant = np.asarray(action_relevant, dtype=bool)
    if scores.ndim != 2 or scores.size == 0:
        raise DataError(f"scores must be a non-empty (Q, N) matrix, got shape {scores.shape}")
    if relevant.shape != scores.shape or action_relevant.shape != scores.shape:
        raise DataError(f"relevance masks {relevant.shape} / {action_relevant.shape} "
                        f"do not match scores {scores.shape}")
    if np.isnan(scores).any():
        raise DataError("NaN in the score matrix")
    empty = np.nonzero(~relevant.any(axis=1))[0]
    if len(empty):
        raise DataError(f"query row {int(empty[0])} has no relevant clip")
    if (relevant & ~action_relevant).any():
        raise DataError("a relevant clip must also be action-relevant")
    return scores, relevant, action_relevant


def _tie_groups(row: np.ndarray, mask: np.ndarray):
    """Descending tie groups of a score row: (start positions, sizes, relevant counts)."""
    order = np.argsort(-row, kind="stable")
    ranked = row[order]
    starts = np.concatenate([[0], np.nonzero(np.diff(ranked))[0] + 1])
    sizes = np.diff(np.concatenate([starts, [len(row)]]))
    counts = np.add.reduceat(mask[order].astype(np.int64), starts)
    return starts, sizes, counts


def _hit_probability(groups, k: int) -> float:
    """P(>= 1 relevant clip in the top k) with ties broken at random."""
    for start, size, count in zip(*groups):
        if start >= k:
            return 0.0
        if count:
            return 1.0 - _none_drawn(size, count, min(k - start, size))
    return 0.0


def _none_drawn(size: int, count: int, draws: int) -> float:
    """C(size - count, draws) / C(size, draws): no relevant among `draws` of `size`."""
    return math.prod((size - count - i) / (size - i) for i in range(draws)) if draws <= size - count else 0.0


def _first_rank(groups) -> float:
    """Expected 1-based rank of the first relevant clip: start + (g + 1) / (r + 1)."""
    for start, size, count in zip(*groups):
        if count:
            return float(start + (size + 1) / (count + 1))
    raise DataError("no relevant clip")  # excluded by _check_inputs


def _ndcg(groups, n_relevant: int, k: int = NDCG_K) -> float:
    """Expected nDCG@k: each position of a tie group is relevant with the group's fraction."""
    dcg = 0.0
    for start, size, count in zip(*groups):
        if start >= k:
            break
        for position in range(start, min(start + size, k)):
            dcg += (count / size) / math.log2(position + 2)
    return dcg / _ideal_dcg(n_relevant, k)


def _ideal_dcg(n_relevant: int, k: int = NDCG_K) -> float:
    return sum(1.0 / math.log2(position + 2) for position in range(min(n_relevant, k)))


def _query_figures(row, rel, act) -> dict:
    groups = _tie_groups(row, rel)
    figures = {f"R@{k}": _hit_probability(groups, k) for k in RECALL_KS}
    figures[f"nDCG@{NDCG_K}"] = _ndcg(groups, int(rel.sum()))
    figures[f"action@{ACTION_K}"] = _hit_probability(_tie_groups(row, act), ACTION_K)
    figures["MedR"] = _first_rank(groups)
    return figures


def _chance_figures(n_relevant: int, n_action: int, n: int) -> dict:
    """The same figures for a uniformly random order (one tie group of all N clips)."""
    one_group = (np.array([0]), np.array([n]), np.array([n_relevant]))
    figures = {f"R@{k}": _hit_probability(one_group, k) for k in RECALL_KS}
    figures[f"nDCG@{NDCG_K}"] = _ndcg(one_group, n_relevant)
    figures[f"action@{ACTION_K}"] = _hit_probability((one_group[0], one_group[1], np.array([n_action])), ACTION_K)
    figures["MedR"] = (n + 1) / (n_relevant + 1)
    return figures


# ---------------------------------------------------------------- evaluation


def evaluate_query_set(model_dir, library, queries: list[Query], device: str = "cpu",
                       batch_size: int = 64) -> dict:
    """Embed the library and the queries with a checkpoint, score, and compute query_metrics."""
    from inference_server.retriever import Retriever
    items = library.items if hasattr(library, "items") else list(library)
    retriever = Retriever.load(model_dir, device=device)
    patches = retriever.embed_motions([item.motion for item in items], batch_size=batch_size)
    # as search ranks them: queries of several steps order-aware (Retriever.score_texts)
    scores = retriever.score_texts([query.query for query in queries], patches, batch_size=batch_size)
    result = query_metrics(scores, relevance(queries, items), action_relevance(queries, items))
    result["model"] = str(model_dir)
    result["fingerprint"] = retriever.fingerprint
    return result
