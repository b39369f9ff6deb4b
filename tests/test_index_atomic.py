"""The index CLI in real subprocesses: a build killed mid-way, and `t2m search --json` on stdout."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from inference_server.cli import main as t2m_main
from inference_server.errors import ModelError
from inference_server.index import MotionIndex, build_index
from inference_server.model import create_checkpoint
from inference_server.retriever import Retriever

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_num_threads(2)
    return create_checkpoint(tmp_path_factory.mktemp("model") / "ckpt", preset="test", seed=0)


@pytest.fixture(scope="module")
def retriever(model):
    return Retriever.load(model, device="cpu")


def _start_build(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "inference_server", "index", "build", *args],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_embedding(process: subprocess.Popen, tmp_path: Path, timeout: float = 120) -> Path:
    """The build's temporary folder once its raw embedding file exists (mid-build)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [path for path in tmp_path.glob("index.tmp-*") if (path / "raw.npy").exists()]
        if found:
            return found[0]
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    raise AssertionError("the build never started embedding")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_build_leaves_the_old_index_intact(model, retriever, tmp_path, how):
    build_index("synthetic:6:1", retriever, tmp_path / "index", progress=False)
    before = {path.name: path.read_bytes() for path in (tmp_path / "index").iterdir()}
    process = _start_build(["synthetic:400:2", "--model", str(model), "--out", "index",
                            "--batch-size", "4", "--device", "cpu"], tmp_path)
    temporary = _wait_for_embedding(process, tmp_path)
    process.send_signal(how)
    process.wait(60)
    stderr = process.stderr.read().decode()
    assert process.returncode != 0
    after = {path.name: path.read_bytes() for path in (tmp_path / "index").iterdir()}
    assert after == before
    assert len(MotionIndex.load(tmp_path / "index", retriever)) == 6
    if how == signal.SIGINT:  # a Python-level interruption cleans up after itself
        assert not temporary.exists() and "interrupted" in stderr
    else:  # a hard kill leaves a folder that is no index and that the next build removes
        with pytest.raises(ModelError, match="not a motion index"):
            MotionIndex.load(temporary)
        build_index("synthetic:3:1", retriever, tmp_path / "index", progress=False)
        assert not temporary.exists()



def test_cli_search_prints_one_json_object(model, retriever, tmp_path):
    assert t2m_main(["index", "build", "synthetic:8:4", "--model", str(model), "--out",
                     str(tmp_path / "index"), "--device", "cpu", "--json"]) == 0
    result = subprocess.run([sys.executable, "-m", "inference_server", "search", "a person walks forward",
                             "-k", "3", "--index", str(tmp_path / "index"), "--model", str(model),
                             "--device", "cpu", "--json"], capture_output=True, text=True, timeout=180,
                            env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    payload = json.loads(lines[0])
    assert payload["tokens"] and len(payload["results"]) == 3
    assert set(payload["results"][0]) >= {"motion_id", "name", "score"}
    scores = [item["score"] for item in payload["results"]]
    assert scores == sorted(scores, reverse=True)
