"""Prompts of several steps on the server side (search `segments` and `spans`, explain `steps`)
and the `preview` op: the Engine in process, then the same over real ZeroMQ loopback sockets.

A test-preset checkpoint (random ViT) and a small synthetic index serve the structural tests;
the ranking test uses the embedded default model on the minimal order pairs of
inference_server/data/contrast.py ("A, then B" against "B, then A", same body and timing).
"""
from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from bridge.client import Client
from bridge.protocol import ProtocolError, RemoteError
from bridge.sequence import split_steps
from inference_server.backend import LocalBackend
from inference_server.engine import Engine
from inference_server.index import MotionIndex, build_index
from inference_server.index.build import atomic_folder, write_index
from inference_server.jami import LAYOUT
from inference_server.maxsim import token_patch_relevance
from inference_server.model import create_checkpoint
from inference_server.ordered import span_seconds, step_token_indices
from inference_server.retriever import Retriever
from inference_server.server import Server

pytestmark = pytest.mark.timeout(300)
THREE_STEPS = "a person walks forward, then waves with the right hand, then sits down"
TWO_STEPS = "someone jumps, then claps"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("sequence")
    retriever = Retriever.load(create_checkpoint(folder / "model", preset="test"), device="cpu")
    build_index("synthetic:16:3", retriever, folder / "index", storage="fp32", progress=False)
    return Engine(retriever, MotionIndex.load(folder / "index", retriever))


def decode_png(data) -> np.ndarray:
    image = Image.open(io.BytesIO(bytes(data)))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def assert_spans_in_order(hit: dict, steps: int, windows: int) -> None:
    spans = hit["spans"]
    assert len(spans) == steps
    edges = [edge for span in spans for edge in span]
    assert edges == sorted(edges) and spans[0][0] >= 0 and spans[-1][1] <= LAYOUT.seconds(windows - 1)[1] + 1e-9
    assert all(round(edge / 0.8, 6) == round(edge / 0.8) for edge in edges)  # whole windows


# ---------------------------------------------------------------- search

def test_a_prompt_of_one_step_is_answered_as_before(engine):
    result, arrays = engine.search("a person waves the right hand", 5)
    assert arrays == {} and set(result) == {"results", "tokens"}
    assert all("spans" not in hit for hit in result["results"])
    plain = engine.index.search(engine.retriever.embed_texts(["a person waves the right hand"])[0], 5)
    assert [hit["motion_id"] for hit in result["results"]] == [engine.index.ids[hit.row] for hit in plain]


def test_a_prompt_of_several_steps_has_segments_in_order_and_spans_on_its_hits(engine):
    result, _ = engine.search(THREE_STEPS, 4)
    steps = split_steps(THREE_STEPS)
    assert len(steps) == 3 and [segment["text"] for segment in result["segments"]] == steps
    assert len(result["results"]) == 4
    for hit in result["results"]:
        assert {"motion_id", "name", "score", "duration", "captions", "spans"} <= set(hit)
        assert_spans_in_order(hit, 3, engine.index.valid_windows(engine.index.row(hit["motion_id"])))
        assert hit["spans"][-1][1] <= hit["duration"] + 0.8
    assert [hit["score"] for hit in result["results"]] == sorted((hit["score"] for hit in result["results"]),
                                                                 reverse=True)
    for segment, step in zip(result["segments"], steps):
        alone, _ = engine.search(step, 4)  # each segment: that step searched alone, plain
        assert segment["tokens"] == alone["tokens"]
        assert [hit["motion_id"] for hit in segment["results"]] == [hit["motion_id"] for hit in alone["results"]]
        np.testing.assert_allclose([hit["score"] for hit in segment["results"]],
                                   [hit["score"] for hit in alone["results"]], atol=1e-4)


def test_the_whole_prompt_score_is_the_order_aware_score(engine):
    """Reranked hits carry the score Retriever.score_texts gives (plain + order penalty), and
    they are the best of the whole library by it (the pool covers this small library)."""
    result, _ = engine.search(TWO_STEPS, 16)
    patches = np.stack([engine.index.patches(row) for row in range(len(engine.index))])
    expected = engine.retriever.score_texts([TWO_STEPS], patches)[0]
    rows = [engine.index.row(hit["motion_id"]) for hit in result["results"]]
    np.testing.assert_allclose([hit["score"] for hit in result["results"]], expected[rows], atol=1e-4)
    assert sorted(rows) == list(range(16))


def test_search_many_mixes_prompts_of_one_and_several_steps(engine):
    queries = [(THREE_STEPS, 3), ("a man kicks", 2), ("", 3), (TWO_STEPS, 5), ("bows, then", 0)]
    outcomes = engine.search_many(queries)
    for position in (0, 1, 3):
        alone, _ = engine.search(*queries[position])
        batched = outcomes[position][0]
        assert set(batched) == set(alone)
        assert [hit["motion_id"] for hit in batched["results"]] == [hit["motion_id"] for hit in alone["results"]]
        np.testing.assert_allclose([hit["score"] for hit in batched["results"]],
                                   [hit["score"] for hit in alone["results"]], atol=1e-4)
    assert [len(segment["results"]) for segment in outcomes[3][0]["segments"]] == [5, 5]
    for position in (2, 4):
        assert isinstance(outcomes[position], ProtocolError) and outcomes[position].code == "bad_request"


def test_span_seconds_are_window_edges_cut_to_the_motion():
    assert span_seconds([[0, 3], [3, 14]]) == [[0.0, LAYOUT.seconds(2)[1]], [LAYOUT.seconds(3)[0], 11.2]]
    # a motion filling 5 windows: the last step ends with it; one aligned to padding alone is empty
    assert span_seconds([[0, 2], [2, 9], [9, 14]], windows=5) == [[0.0, 1.6], [1.6, 4.0], [4.0, 4.0]]


def test_order_aware_ranking_puts_a_then_b_above_b_then_a(tmp_path):
    """The embedded default model on 12 minimal order pairs: for each caption, its own clip
    outranks the twin with the steps swapped, in at least 11 of the 12 pairs each way."""
    from inference_server.data import Dataset
    from inference_server.data.contrast import contrast_pairs
    from inference_server.default import MODEL_DIR

    torch.set_num_threads(2)
    pairs = [pair for pair in contrast_pairs(seeds=1, order_pairs=12) if pair[0].labels["kind"] == "order"]
    retriever = Retriever.load(MODEL_DIR, device="cpu")
    items = [item for pair in pairs for item in pair]
    build_index(Dataset(items, spec="order pairs"), retriever, tmp_path / "index", storage="fp32", progress=False)
    engine = Engine(retriever, MotionIndex.load(tmp_path / "index", retriever))
    wins, plain_wins = 0, 0
    for own, twin in [pair for first, second in pairs for pair in ((first, second), (second, first))]:
        caption = own.captions[0]
        result, _ = engine.search(caption, len(items))
        ranked = [hit["motion_id"] for hit in result["results"]]
        wins += ranked.index(own.id) < ranked.index(twin.id)
        hit = result["results"][ranked.index(own.id)]
        assert_spans_in_order(hit, 2, engine.index.valid_windows(engine.index.row(own.id)))
        plain = [engine.index.ids[hit.row] for hit in engine.index.search(retriever.embed_texts([caption])[0],
                                                                           len(items))]
        plain_wins += plain.index(own.id) < plain.index(twin.id)
    print(f"order pairs: order-aware {wins} of 24, plain {plain_wins} of 24")
    assert wins >= 22, f"order-aware ranking right in {wins} of 24 (plain: {plain_wins})"
    assert plain_wins <= wins - 4


# ---------------------------------------------------------------- explain

def test_explain_of_several_steps_keeps_each_steps_tokens_in_its_span(engine):
    row = int(np.argmax([engine.index.meta(i)["duration"] for i in range(len(engine.index))]))
    motion_id, text = engine.index.ids[row], "a person walks forward, then waves with the right hand"
    result, arrays = engine.explain(text, motion_id)
    relevance = arrays["relevance"]
    embedding = engine.retriever.embed_texts([text])[0]
    full = token_patch_relevance(torch.from_numpy(embedding.vectors),
                                 torch.from_numpy(engine.index.patches(row))).numpy()[:, :, :relevance.shape[2]]
    steps = result["steps"]
    assert [step["text"] for step in steps] == split_steps(text)
    assert {"walks", "forward"} <= {result["tokens"][t] for t in steps[0]["tokens"]}
    assert {"waves", "right", "hand"} <= {result["tokens"][t] for t in steps[1]["tokens"]}
    assert result["tokens"].index("then") not in steps[0]["tokens"] + steps[1]["tokens"]
    assert steps[0]["end_s"] <= steps[1]["start_s"] and steps[0]["start_s"] < steps[0]["end_s"]
    members = {token for step in steps for token in step["tokens"]}
    for token in range(len(result["tokens"])):
        if token not in members:
            np.testing.assert_allclose(relevance[token], full[token], atol=1e-6)
            continue
        inside = np.zeros(relevance.shape[2], dtype=bool)
        for step in steps:
            if token in step["tokens"]:
                inside[int(round(step["start_s"] / 0.8)):int(round(step["end_s"] / 0.8))] = True
        np.testing.assert_allclose(relevance[token][:, inside], full[token][:, inside], atol=1e-6)
        np.testing.assert_allclose(relevance[token][:, ~inside], full[token].min(), atol=1e-6)


def test_explain_of_one_step_is_unchanged(engine):
    result, arrays = engine.explain("a person waves the right hand", engine.index.ids[0])
    assert "steps" not in result
    embedding = engine.retriever.embed_texts(["a person waves the right hand"])[0]
    full = token_patch_relevance(torch.from_numpy(embedding.vectors),
                                 torch.from_numpy(engine.index.patches(0))).numpy()
    np.testing.assert_allclose(arrays["relevance"], full[:, :, :arrays["relevance"].shape[2]], atol=1e-6)


def test_t2m_explain_of_several_steps_and_its_picture_outline_the_steps(engine, tmp_path):
    from inference_server.explain import explain
    from inference_server.pictures import save_relevance_png

    motion = engine.index.motion(int(np.argmax([engine.index.meta(i)["duration"] for i in range(16)])))
    explanation = explain(engine.retriever, TWO_STEPS, motion)
    assert [step["text"] for step in explanation.steps] == split_steps(TWO_STEPS)
    assert explanation.to_dict()["steps"] == explanation.steps
    assert explain(engine.retriever, "someone jumps", motion).steps is None
    with_steps = save_relevance_png(explanation.tokens, explanation.relevance, tmp_path / "steps.png",
                                    steps=explanation.steps)
    without = save_relevance_png(explanation.tokens, explanation.relevance, tmp_path / "plain.png")
    cyan = [np.sum(np.all(np.asarray(Image.open(path).convert("RGB")) == (0, 255, 255), axis=-1))
            for path in (with_steps, without)]
    assert cyan[0] > 100 and cyan[1] == 0


def test_step_tokens_are_found_in_the_whole_prompt():
    tokens = ["walks", "forward", ",", "then", "waves", "right", "hand", ",", "then", "sits", "down"]
    assert step_token_indices(tokens, [["walks", "forward"], ["waves", "right", "hand"], ["sits", "down"]]) == \
        [[0, 1], [4, 5, 6], [9, 10]]
    # reordered by "before", and a verb the second step borrows from the first
    assert step_token_indices(["before", "jumping", ",", "bows"], [["bows"], ["jumping"]]) == [[3], [1]]
    assert step_token_indices(["walks", "forward", ",", "then", "backward"], [["walks", "forward"],
                                                                               ["walks", "backward"]]) == [[0, 1], [0, 4]]


# ---------------------------------------------------------------- preview

def test_preview_is_a_png_of_the_asked_size_and_cached(engine):
    motion_id = engine.index.ids[5]
    result, arrays = engine.preview(motion_id, width=200, height=50)
    assert result == {"motion_id": motion_id, "width": 200, "height": 50}
    assert arrays["png"].dtype == np.uint8 and arrays["png"].ndim == 1
    assert decode_png(arrays["png"]).shape == (50, 200, 3)
    again = engine.preview(motion_id, width=200, height=50)[1]["png"]
    assert again.tobytes() == arrays["png"].tobytes() and engine._previews.hits >= 1
    default = engine.preview(motion_id)
    assert (default[0]["width"], default[0]["height"]) == (256, 64)
    assert decode_png(default[1]["png"]).shape == (64, 256, 3)


def test_preview_of_a_library_without_positions_is_not_found(engine, tmp_path):
    index = engine.index
    raw = np.stack([index.patches(row) for row in range(len(index))])
    with atomic_folder(tmp_path / "bare") as folder:
        write_index(folder, raw, [index.meta(row) for row in range(len(index))], None, index.manifest["model"], "fp32")
    bare = Engine(engine.retriever, MotionIndex.load(tmp_path / "bare", engine.retriever))
    with pytest.raises(ProtocolError) as caught:
        bare.preview(index.ids[0])
    assert caught.value.code == "not_found" and "no positions" in caught.value.message
    assert index.ids[0] in caught.value.message


# ---------------------------------------------------------------- over the wire

@pytest.fixture(scope="module")
def client(engine):
    server = Server(engine, bind="tcp://127.0.0.1:*")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.ready.wait(10), "the server did not start"
    with Client(server.address, timeout=60, retries=0) as client:
        yield client
    server.stop()
    thread.join(10)


def test_search_with_segments_over_the_wire_equals_in_process(client, engine):
    result, _ = client.call("search", {"text": THREE_STEPS, "k": 3})
    assert result == json.loads(json.dumps(engine.search(THREE_STEPS, 3)[0]))
    assert len(result["segments"]) == 3 and all("spans" in hit for hit in result["results"])
    one_step, _ = client.call("search", {"text": "a person sits down", "k": 3})
    assert "segments" not in one_step and all("spans" not in hit for hit in one_step["results"])


def test_explain_steps_over_the_wire(client, engine):
    result, arrays = client.call("explain", {"text": TWO_STEPS, "motion_id": engine.index.ids[1]})
    assert [step["text"] for step in result["steps"]] == split_steps(TWO_STEPS)
    assert arrays["relevance"].shape[0] == len(result["tokens"])


def test_preview_over_the_wire(client, engine):
    motion_id = engine.index.ids[2]
    result, arrays = client.call("preview", {"motion_id": motion_id, "width": 128, "height": 32})
    assert result == {"motion_id": motion_id, "width": 128, "height": 32}
    assert decode_png(arrays["png"]).shape == (32, 128, 3)
    assert decode_png(client.call("preview", {"motion_id": motion_id})[1]["png"]).shape == (64, 256, 3)
    # INTERFACES.md spells the size as one argument: [width, height]
    result, arrays = client.call("preview", {"motion_id": motion_id, "size": [96, 24]})
    assert result == {"motion_id": motion_id, "width": 96, "height": 24}
    assert decode_png(arrays["png"]).shape == (24, 96, 3)


@pytest.mark.parametrize("args, code, words", [
    ({"motion_id": "missing"}, "not_found", "no motion 'missing'"),
    ({"motion_id": "synthetic_3_000000", "width": 2000}, "bad_request", "width must be an integer from 32 to 1024"),
    ({"motion_id": "synthetic_3_000000", "width": 31}, "bad_request", "width"),
    ({"motion_id": "synthetic_3_000000", "height": 15}, "bad_request", "height must be an integer from 16 to 512"),
    ({"motion_id": "synthetic_3_000000", "height": "64"}, "bad_request", "height"),
    ({"width": 64}, "bad_request", "preview needs argument(s) motion_id"),
    ({"motion_id": "synthetic_3_000000", "size": [96]}, "bad_request", "size must be [width, height]"),
])
def test_refused_previews(client, engine, args, code, words):
    with pytest.raises(RemoteError) as caught:
        client.call("preview", args)
    assert caught.value.code == code and words in caught.value.message
    with pytest.raises(RemoteError) as in_process:  # the in-process backend: the same dispatch
        LocalBackend(engine).call("preview", args)
    assert (in_process.value.code, in_process.value.message) == (code, caught.value.message)
