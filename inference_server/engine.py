"""Engine: the wire ops (bridge/protocol.py OPS) over a Retriever and a MotionIndex.

A search or explain text of several steps ("A, then B": bridge/sequence.py) is order-aware
(ordered.py): search reranks a candidate pool of the plain search by the order penalty and adds
each step's own results (`segments`) and each hit's step `spans`; explain adds the `steps` and
keeps each step's tokens to the time of its span.

Each op returns `(result: dict, arrays: dict[str, np.ndarray])` exactly as the wire carries
them and raises bridge.protocol.ProtocolError(code, message) for requests it refuses
(bad_request, not_found). The server adds only framing; in-process callers (benchmarks,
`t2m search --index`) get the same answers.
"""
from __future__ import annotations


import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from bridge.protocol import (BAD_REQUEST, DEFAULT_K, DESCRIBE_K, MAX_FRAMES, MAX_RESAMPLED_FRAMES, NOT_FOUND, OPS,
                             PREVIEW_HEIGHT, PREVIEW_WIDTH, PROTOCOL_VERSION, ProtocolError, check_fps, check_height,
                             check_k, check_motion_id, check_size, check_text, check_width)
from inference_server.errors import DataError
from inference_server.explain import explain_steps
from inference_server.index.search import Hit
from inference_server.jami import BAND, FPS, PART_NAMES
from inference_server.maxsim import pooled_scores, token_patch_relevance
from inference_server.motion import Motion
from inference_server.ordered import order_penalty, query_texts, span_seconds
from inference_server.preview import PreviewCache

log = logging.getLogger("t2m.server")

MAX_DESCRIBE_FRAMES = MAX_FRAMES  # ten minutes at 60 fps (9.5 MB of float32)
# Caption-bank rows scored at once by describe (bounds the (rows, tokens, 196) similarity block).
_BANK_CHUNK = 2048
_EMBED_CHUNK = 256  # captions per text-encoder call while building the bank (a stop waits at most one)
# A search of several steps reranks this many plain hits at least (CANDIDATES_PER_K x k when more).
MIN_CANDIDATES = 100
CANDIDATES_PER_K = 10
_RERANK_CHUNK = 256  # candidates whose patches are decoded and aligned at once


@dataclass
class _Query:
    """One search of a micro-batch: its texts (the prompt, then its steps when it has several)."""
    position: int
    k: int
    texts: list[str]
    embeddings: list = field(default_factory=list)

    @property
    def steps(self) -> list[str]:
        return self.texts[1:]

    @property
    def depth(self) -> int:
        """Hits wanted for the whole prompt: k, or a candidate pool to rerank by order."""
        return max(MIN_CANDIDATES, CANDIDATES_PER_K * self.k) if self.steps else self.k


class Engine:
    """The ops of the wire without the wire.

    retriever: a loaded Retriever; index: a MotionIndex built with the same checkpoint.
    searcher: where text and motion queries are ranked; default the index itself. Anything
        with `search_batch(queries, k) -> list[list[Hit]]` over the index's rows (e.g. the
        Qdrant backend) can stand in.
    """

    def __init__(self, retriever, index, searcher=None):
        self.retriever = retriever
        self.index = index
        self.searcher = searcher if searcher is not None else index
        self._bank_texts = bank_texts(index)
        self._bank = LazyCaptionBank(retriever, self._bank_texts)
        self._previews = PreviewCache()
        _serialize_tokenizer(retriever)  # the server's lanes and the bank's thread encode texts at once

    def warm_up(self) -> None:
        """Embed the caption bank in a background thread now (minutes for a large library on a
        CPU), so that search answers at once and the first describe waits less."""
        self._bank.start()

    def close(self) -> None:
        """Stop a warm-up still running (within one chunk of captions)."""
        self._bank.stop()

    def ready(self) -> dict[str, bool]:
        """{op: whether it answers now}; describe is False while its caption bank is embedded."""
        return {op: (self._bank.ready if op == "describe" else True) for op in OPS}

    def bank_progress(self) -> tuple[int, int]:
        """(captions embedded, captions) of the caption bank describe needs."""
        return self._bank.progress

    def not_ready_reason(self, op: str) -> str | None:
        """Why `op` cannot answer right now (None when it can)."""
        if op == "describe" and not self._bank.ready:
            done, total = self._bank.progress
            return f"describe is not ready: the caption bank is being embedded ({done} of {total} captions)"
        return None

    # ---------------------------------------------------------------- ops

    def info(self) -> tuple[dict, dict]:
        model = {"name": self.retriever.name, "fingerprint": self.retriever.fingerprint,
                 "dim": self.retriever.dim, "pooling": self.retriever.pooling,
                 "licence": self.retriever.licence}
        result = {"protocol": PROTOCOL_VERSION, "model": model,
                  "library": {"motions": len(self.index), "captions": len(self._bank_texts)},
                  "device": str(self.retriever.device), "ready": self.ready()}
        return result, {}

    def search(self, text, k=DEFAULT_K) -> tuple[dict, dict]:
        outcome = self.search_many([(text, k)])[0]
        if isinstance(outcome, ProtocolError):
            raise outcome
        return outcome

    def search_many(self, queries: list[tuple]) -> list:
        """Several (text, k) searches with one text-encoder call (every prompt and every step of
        the prompts of several steps): micro-batching for the server.

        Returns, per query, either (result, arrays) or the ProtocolError refusing it.
        """
        outcomes: list = [None] * len(queries)
        plans = []
        for position, (text, k) in enumerate(queries):
            try:
                text = check_text(text)
                plans.append(_Query(position, check_k(k), query_texts(text)))
            except ProtocolError as error:
                outcomes[position] = error
        ready = self._embed_queries(plans, outcomes)
        hit_lists = self._search_texts(ready)
        for plan, hits in zip(ready, hit_lists):
            outcomes[plan.position] = (self._search_result(plan, hits), {})
        return outcomes

    def _embed_queries(self, plans: list[_Query], outcomes: list) -> list[_Query]:
        """Embed every text of every plan at once; the plans whose texts all embedded (the others'
        outcome is the error of their first text that did not)."""
        embeddings = iter(self._embed([text for plan in plans for text in plan.texts]))
        ready = []
        for plan in plans:
            plan.embeddings = [next(embeddings) for _ in plan.texts]
            error = next((emb for emb in plan.embeddings if isinstance(emb, ProtocolError)), None)
            if error is None:
                ready.append(plan)
            else:
                outcomes[plan.position] = error
        return ready

    def _search_texts(self, plans: list[_Query]) -> list[list[list[Hit]]]:
        """Per plan, the plain hits of each of its texts: the prompt's to plan.depth, each step's to k.
        One searcher call for the candidate pools (the prompts of several steps), one for the rest."""
        wanted = [(plan, number, plan.depth if number == 0 else plan.k)
                  for plan in plans for number in range(len(plan.texts))]
        hits: dict[tuple[int, int], list[Hit]] = {}
        for pools in (True, False):
            group = [(plan, number, depth) for plan, number, depth in wanted if (depth > plan.k) == pools]
            if group:
                found = self.searcher.search_batch([plan.embeddings[number] for plan, number, _ in group],
                                                   max(depth for _, _, depth in group))
                hits.update({(plan.position, number): list(each) for (plan, number, _), each in zip(group, found)})
        return [[hits[plan.position, number] for number in range(len(plan.texts))] for plan in plans]

    def _search_result(self, plan: _Query, hits: list[list[Hit]]) -> dict:
        tokens = list(plan.embeddings[0].tokens)
        if not plan.steps:
            return {"results": self._results(hits[0][:plan.k]), "tokens": tokens}
        ranked, spans = self._rerank_by_order(hits[0], plan.embeddings[1:], plan.k)
        results = [{**result, "spans": span_seconds(each, self.index.valid_windows(hit.row))}
                   for result, hit, each in zip(self._results(ranked), ranked, spans)]
        segments = [{"text": text, "tokens": list(emb.tokens), "results": self._results(step_hits[:plan.k])}
                    for text, emb, step_hits in zip(plan.steps, plan.embeddings[1:], hits[1:])]
        return {"results": results, "tokens": tokens, "segments": segments}

    @torch.no_grad()
    def _rerank_by_order(self, hits: list[Hit], steps: list, k: int) -> tuple[list[Hit], list]:
        """The k best of `hits` by plain score + order penalty of the steps (ordered.py), with each
        one's (K, 2) window spans."""
        if not hits:
            return [], []
        scores, spans = [], []
        vectors = [torch.from_numpy(step.vectors).to(self.index.store.device) for step in steps]
        for start in range(0, len(hits), _RERANK_CHUNK):
            chunk = hits[start:start + _RERANK_CHUNK]
            docs = self.index.store.decode(torch.tensor([hit.row for hit in chunk]))
            penalty, chunk_spans = order_penalty(vectors, docs, self.retriever.pooling)
            scores.append(torch.tensor([hit.score for hit in chunk]) + penalty.cpu())
            spans.append(chunk_spans.cpu())
        ranked, order = torch.sort(torch.cat(scores), descending=True, stable=True)  # ties: plain order
        spans = torch.cat(spans)[order[:k]].tolist()
        return [Hit(hits[i].row, score) for i, score in zip(order[:k].tolist(), ranked[:k].tolist())], spans

    def explain(self, text, motion_id) -> tuple[dict, dict]:
        texts = query_texts(check_text(text))
        row = self._row(motion_id)
        embeddings = self._embed_all(texts)
        patches = self._patches(row)
        relevance = token_patch_relevance(torch.from_numpy(embeddings[0].vectors), torch.from_numpy(patches)).numpy()
        relevance = np.ascontiguousarray(relevance[:, :, :self.index.valid_windows(row)], dtype=np.float32)
        result = {"tokens": list(embeddings[0].tokens), "parts": list(PART_NAMES), "window_seconds": BAND / FPS}
        if len(texts) > 1:
            result["steps"] = explain_steps(texts[1:], embeddings, patches, relevance, self.retriever.pooling)
        return result, {"relevance": relevance}

    def motion(self, motion_id) -> tuple[dict, dict]:
        motion = self._stored_motion(motion_id)
        result = {"joints": list(motion.skeleton.names), "parents": [int(p) for p in motion.skeleton.parents],
                  "fps": float(motion.fps), "up": "Y"}
        arrays = {"positions": np.ascontiguousarray(motion.positions, dtype=np.float32)}
        if motion.rotations is not None:
            arrays["rotations"] = np.ascontiguousarray(motion.rotations, dtype=np.float32)
        return result, arrays

    def describe(self, motion_id=None, positions=None, fps=None, k=DESCRIBE_K) -> tuple[dict, dict]:
        k = check_k(k)
        if (motion_id is None) == (positions is None):
            raise ProtocolError(BAD_REQUEST, "describe needs either motion_id or the array positions (with fps)")
        if motion_id is not None:
            if fps is not None:
                raise ProtocolError(BAD_REQUEST, "fps goes with the array positions, not with motion_id")
            patches = self._patches(self._row(motion_id))
        else:
            patches = self.retriever.embed_motions([_motion_from_wire(positions, fps)])[0]
        return {"captions": self._bank.get().rank(patches, k)}, {}

    def similar(self, motion_id, k=DEFAULT_K) -> tuple[dict, dict]:
        k = check_k(k)
        hits = self.index.similar(self._row(motion_id), k, searcher=self.searcher)
        return {"results": self._results(hits), "tokens": []}, {}

    def preview(self, motion_id, width=PREVIEW_WIDTH, height=PREVIEW_HEIGHT, size=None) -> tuple[dict, dict]:
        """A stick-figure strip of the motion (preview.py) as PNG bytes, cached per (id, size);
        `size` [width, height], when given, stands for width and height."""
        width, height = check_size(size) if size is not None else (check_width(width), check_height(height))
        self._row(motion_id)
        png = self._previews.preview(motion_id, (width, height), lambda known: self._stored_motion(known).positions)
        return {"motion_id": motion_id, "width": width, "height": height}, {"png": np.frombuffer(png, dtype=np.uint8)}

    # ---------------------------------------------------------------- helpers

    def _row(self, motion_id) -> int:
        check_motion_id(motion_id)
        try:
            return self.index.row(motion_id)
        except KeyError:
            raise ProtocolError(NOT_FOUND, f"no motion {motion_id[:200]!r} in the library") from None

    def _stored_motion(self, motion_id) -> Motion:
        motion = self.index.motion(self._row(motion_id))
        if motion.num_frames == 0:  # an index written without positions: say so, not an empty motion
            raise ProtocolError(NOT_FOUND, f"the library stores no positions for motion {motion_id[:200]!r}")
        return motion

    def _patches(self, row: int) -> np.ndarray:
        return np.ascontiguousarray(self.index.patches(row), dtype=np.float32)

    def _results(self, hits) -> list[dict]:
        results = []
        for hit in hits:
            meta = self.index.meta(hit.row)
            results.append({"motion_id": meta["motion_id"], "name": meta["name"], "score": float(hit.score),
                            "duration": float(meta["duration"]), "captions": motion_captions(meta)})
        return results

    def _embed(self, texts: list[str]) -> list:
        """TextEmbedding per text, or a bad_request ProtocolError for a text the encoder refuses."""
        if not texts:
            return []
        try:
            return self.retriever.embed_texts(texts)
        except DataError:
            return [self._embed_or_error(text) for text in texts]  # find which text failed

    def _embed_all(self, texts: list[str]) -> list:
        """TextEmbedding per text; the bad_request of the first text the encoder refuses."""
        embeddings = self._embed(texts)
        error = next((emb for emb in embeddings if isinstance(emb, ProtocolError)), None)
        if error is not None:
            raise error
        return embeddings

    def _embed_or_error(self, text: str):
        try:
            return self._embed_one(text)
        except ProtocolError as error:
            return error

    def _embed_one(self, text: str):
        try:
            return self.retriever.embed_texts([text])[0]
        except DataError as error:
            raise ProtocolError(BAD_REQUEST, str(error)) from None


class _LockedTokenizer:
    """A Hugging Face tokenizer whose calls take a lock: a fast tokenizer called from two threads
    at once with padding/truncation can fail ("Already borrowed"); the model itself is safe."""

    def __init__(self, tokenizer):
        self.__dict__["_tokenizer"] = tokenizer
        self.__dict__["_lock"] = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __setattr__(self, name, value):
        setattr(self._tokenizer, name, value)

    def __len__(self):
        return len(self._tokenizer)


def _serialize_tokenizer(retriever) -> None:
    text = getattr(getattr(retriever, "model", None), "text", None)
    tokenizer = getattr(text, "tokenizer", None)
    if tokenizer is not None and not isinstance(tokenizer, _LockedTokenizer):
        text.tokenizer = _LockedTokenizer(tokenizer)


class LazyCaptionBank:
    """The caption bank, embedded on first use or ahead of time by a stoppable thread."""

    def __init__(self, retriever, texts: list[str]):
        self._retriever, self._texts = retriever, texts
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bank: CaptionBank | None = None
        self._embedded = [0]  # captions embedded so far (progress for `busy` messages)

    def start(self) -> None:
        """Embed in a background thread (once: a second call does nothing)."""
        with self._start_lock:
            if self._thread is None and self._bank is None:
                # Not a daemon (a thread inherits its creator's flag, and the server's may be one):
                # a build killed at interpreter exit inside torch aborts the process.
                self._thread = threading.Thread(target=self.get, name="caption-bank", daemon=False)
                self._thread.start()

    @property
    def ready(self) -> bool:
        return self._bank is not None

    @property
    def progress(self) -> tuple[int, int]:
        return min(self._embedded[0], len(self._texts)), len(self._texts)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def get(self) -> CaptionBank | None:
        """The bank (None only once stop() has been called)."""
        with self._lock:
            if self._bank is None and not self._stop.is_set():
                self._bank = CaptionBank.build(self._retriever, self._texts, self._stop, self._embedded)
            return self._bank


class CaptionBank:
    """The library's captions and label texts with their token vectors, for describe.

    Embedded once at start-up; stored padded (rows, longest, d) with a token mask so that
    one motion is scored against every caption in a few batched calls.
    """

    def __init__(self, texts: list[str], vectors: torch.Tensor, mask: torch.Tensor, pooling: str):
        self.texts, self.vectors, self.mask, self.pooling = texts, vectors, mask, pooling

    @classmethod
    def build(cls, retriever, texts: list[str], stop: threading.Event | None = None,
              progress: list | None = None) -> CaptionBank | None:
        """Embed `texts` chunk by chunk; None when `stop` is set before the end.
        progress: a one-item list updated with the number of texts embedded so far."""
        started = time.perf_counter()
        embeddings = []
        for start in range(0, len(texts), _EMBED_CHUNK):
            if stop is not None and stop.is_set():
                return None
            embeddings += _embed_skipping_empty(retriever, texts[start:start + _EMBED_CHUNK])
            if progress is not None:
                progress[0] = len(embeddings)
        texts = [text for text, emb in zip(texts, embeddings) if emb is not None]
        embeddings = [emb for emb in embeddings if emb is not None]
        longest = max((len(emb.tokens) for emb in embeddings), default=1)
        vectors = torch.zeros((len(texts), longest, retriever.dim), dtype=torch.float32)
        mask = torch.zeros((len(texts), longest), dtype=torch.bool)
        for row, emb in enumerate(embeddings):
            vectors[row, :len(emb.vectors)] = torch.from_numpy(emb.vectors)
            mask[row, :len(emb.vectors)] = True
        log.info("caption bank: %d texts embedded in %.1f s", len(texts), time.perf_counter() - started)
        return cls(texts, vectors.to(retriever.device), mask.to(retriever.device), retriever.pooling)

    def __len__(self) -> int:
        return len(self.texts)

    @torch.no_grad()
    def rank(self, patches: np.ndarray, k: int) -> list[dict]:
        """The k captions scoring highest against one motion's (196, d) patches."""
        if not self.texts:
            return []
        doc = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)).to(self.vectors.device)[None]
        scores = torch.cat([
            pooled_scores(self.vectors[start:start + _BANK_CHUNK], doc, self.mask[start:start + _BANK_CHUNK],
                          pooling=self.pooling)[:, 0]
            for start in range(0, len(self.texts), _BANK_CHUNK)])
        top = torch.topk(scores, min(k, len(self.texts)))
        return [{"text": self.texts[i], "score": float(s)} for s, i in zip(top.values.tolist(), top.indices.tolist())]


def bank_texts(index) -> list[str]:
    """The library's unique captions and label texts, in library order."""
    return list(dict.fromkeys(text for row in range(len(index)) for text in _bank_texts(index.meta(row))))


def _bank_texts(meta: dict) -> list[str]:
    texts = [str(caption) for caption in meta.get("captions") or []] + [label_text(meta.get("labels") or {})]
    return [text for text in texts if text.strip()]


def _embed_skipping_empty(retriever, texts: list[str]) -> list:
    """Embeddings in order; None for a text without word tokens (e.g. only punctuation)."""
    try:
        return retriever.embed_texts(texts)
    except DataError:
        results = []
        for text in texts:
            try:
                results.append(retriever.embed_texts([text])[0])
            except DataError:
                results.append(None)
        return results


# ---------------------------------------------------------------- small facts

# Label keys that describe what a motion shows (others, like "rig" or "take", do not).
DESCRIPTIVE_LABELS = ("content", "style", "action", "actions", "clip")


def motion_captions(meta: dict) -> list[str]:
    """A motion's captions; when it has none, its descriptive labels as one text."""
    captions = [str(caption) for caption in meta.get("captions") or []]
    label = label_text(meta.get("labels") or {})
    return captions or ([label] if label else [])


def label_text(labels: dict) -> str:
    """Descriptive labels as words: {"content": "wave-left-hand", "style": "elderly"} ->
    "wave left hand, elderly"; lists of strings are joined, other values skipped."""
    words = []
    for key in DESCRIPTIVE_LABELS:
        value = labels.get(key)
        values = value if isinstance(value, list) else [value]
        words += [item.replace("-", " ").replace("_", " ").strip() for item in values if isinstance(item, str)]
    return ", ".join(word for word in words if word)


def _motion_from_wire(positions, fps) -> Motion:
    """A Motion from describe's arguments, every bound checked before any allocation."""
    if fps is None:
        raise ProtocolError(BAD_REQUEST, "describe with the array positions needs fps")
    check_fps(fps)
    positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[1:] != (22, 3) or not 1 <= positions.shape[0] <= MAX_DESCRIBE_FRAMES:
        raise ProtocolError(BAD_REQUEST, f"positions must be (T, 22, 3) SMPL-22 joints with 1 <= T <= "
                                         f"{MAX_DESCRIBE_FRAMES} (MAX_FRAMES), got {tuple(positions.shape)}")
    resampled = resampled_frames(positions.shape[0], float(fps))
    if resampled > MAX_RESAMPLED_FRAMES:
        raise ProtocolError(BAD_REQUEST, f"{positions.shape[0]} frames at {fps:g} fps last "
                                         f"{positions.shape[0] / fps:g} s: {resampled} frames at {FPS} fps exceed "
                                         f"the limit of {MAX_RESAMPLED_FRAMES} (MAX_RESAMPLED_FRAMES)")
    if positions.dtype.kind != "f" or not np.isfinite(positions).all():
        raise ProtocolError(BAD_REQUEST, "positions must be finite floating-point numbers (metres, Y-up)")
    return Motion.smpl22(positions.astype(np.float32), float(fps))


def resampled_frames(frames: int, fps: float, target: float = FPS) -> int:
    """Frames of a `frames`-long motion at `fps` once resampled to `target` fps (as Motion.resample)."""
    return max(1, int(round(frames * target / fps)))
