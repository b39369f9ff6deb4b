"""`t2m demo` end to end (server subprocess, bpy, pictures), and the shipped default model's
retrieval on fine-grained prompts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def small_library(tmp_path_factory) -> dict:
    from inference_server.default import MODEL_DIR
    from inference_server.index import build_index

    index = tmp_path_factory.mktemp("demo") / "index"
    build_index("synthetic:60:0", MODEL_DIR, index, progress=False)
    return {"model": MODEL_DIR, "index": index}


def test_demo_writes_the_blend_the_pictures_and_a_summary(tmp_path, small_library):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "inference_server", "demo", "--out", str(out),
                           "--index", str(small_library["index"]), "--model", str(small_library["model"]), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    names = {Path(path).name for path in summary["outputs"]}
    assert names == {"demo.blend", "poses.png", "jami.png", "explanation.png", "summary.json"}
    for path in summary["outputs"]:
        assert Path(path).stat().st_size > 1000
    assert [item["prompt"] for item in summary["prompts"]][0] == "a person waves with the left hand"
    assert summary["coloured_by"] == "left"
    assert "wave_left" in summary["prompts"][0]["top"][0]["name"]
    assert not (out / "server.log").read_text().count("Traceback")


def test_demo_refuses_a_missing_index_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "inference_server", "demo", "--out", str(tmp_path),
                           "--index", "somewhere"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "index somewhere does not exist" in done.stderr
    assert done.stderr.count("\n") == 1


FINE_GRAINED = {
    "a person waves with the left hand": "wave_left",
    "a person waves with the right hand": "wave_right",
    "someone kicks with the left leg": "kick_left",
    "someone kicks with the right leg": "kick_right",
    "a person raises the right hand": "raise_right",
}


def test_default_model_tells_left_from_right(small_library):
    from inference_server.data.synthetic import motion_for
    from inference_server.retriever import Retriever

    retriever = Retriever.load(small_library["model"], device="cpu")
    motions = [motion_for([name], seed=7, seconds=4.0) for name in FINE_GRAINED.values()]
    scores = retriever.score(list(FINE_GRAINED), motions)
    assert (scores.argmax(axis=1) == range(len(FINE_GRAINED))).all(), scores
