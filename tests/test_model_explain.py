"""Explanation: token x part x window relevance, the picture and the `t2m explain` command."""
import argparse
import json

import numpy as np
import pytest
import torch

from inference_server.cli import train as train_cli
from inference_server.data import load_spec
from inference_server.explain import explain
from inference_server.jami import LAYOUT, covered_windows
from inference_server.model import create_checkpoint
from inference_server.retriever import Retriever

torch.set_num_threads(1)  # on a shared 2-core machine 2 threads spin-wait: 1 is faster and steadier


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return create_checkpoint(tmp_path_factory.mktemp("ckpt") / "test", preset="test", seed=2)


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory):
    """A synthetic motion as a HumanML3D joints file (20 fps)."""
    motion = load_spec("synthetic:1:5").items[0].motion.resample(20.0)
    path = tmp_path_factory.mktemp("motion") / "clip.npy"
    np.save(path, motion.positions)
    return path, motion


def test_relevance_is_the_maxsim_grid(checkpoint, motion_file):
    _, motion = motion_file
    retriever = Retriever.load(checkpoint, device="cpu")
    result = explain(retriever, "a person kicks with the left foot", motion)
    windows = covered_windows(motion.duration)
    assert result.relevance.shape == (len(result.tokens), 14, windows)
    score = retriever.score(["a person kicks with the left foot"], [motion])[0, 0]
    assert result.score == pytest.approx(float(score), abs=1e-5)
    patches = retriever.embed_motions([motion])[0]
    vectors = retriever.embed_texts(["a person kicks with the left foot"])[0].vectors
    for token, (part, window) in enumerate(result.aligned):
        best = vectors[token] @ patches[LAYOUT.patch(window, part)]
        assert best == pytest.approx(float((vectors[token] @ patches.T).max()), abs=1e-5)


def test_explain_command_writes_the_picture(checkpoint, motion_file, tmp_path):
    path, motion = motion_file
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "why.png"
    args = parser.parse_args(["explain", "wave the right hand", str(path), "--model", str(checkpoint),
                              "--out", str(out), "--device", "cpu", "--json"])
    result = json.loads(json.dumps(args.handler(args)))
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["tokens"] == ["wave", "the", "right", "hand"] and len(result["parts"]) == 14
    assert result["windows"] == covered_windows(motion.duration)
    assert [entry["token"] for entry in result["alignment"]] == result["tokens"]
