"""The `t2m` command as people run it: the embedded default without options, an index that
knows its model, errors before torch loads, and progress bars only on a terminal."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_server import default
from inference_server.cli import main as t2m_main
from inference_server.data import load_spec
from inference_server.index import MotionIndex, build_index
from inference_server.index.manifest import built_with
from inference_server.model import create_checkpoint
from inference_server.retriever import Retriever

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[1]


def t2m(*argv: str, env: dict | None = None, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    """`t2m ARGV` in a child process (stderr a pipe unless given: not a terminal); stdout and
    stderr decoded without newline translation, so a carriage return stays visible."""
    done = subprocess.run([sys.executable, "-m", "inference_server", *argv], stdout=subprocess.PIPE, stderr=stderr,
                          timeout=600, cwd=REPO, env={**os.environ, **(env or {})})
    done.stdout = done.stdout.decode("utf-8")
    done.stderr = "" if done.stderr is None else done.stderr.decode("utf-8")
    return done


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("models")
    return {"a": create_checkpoint(folder / "a", preset="test", seed=0),
            "b": create_checkpoint(folder / "b", preset="test", seed=1)}


@pytest.fixture(scope="module")
def index(models, tmp_path_factory):
    """An index built from checkpoint a (loaded from its folder, so the index records it)."""
    path = tmp_path_factory.mktemp("index") / "index"
    build_index("synthetic:8:2", Retriever.load(models["a"], device="cpu"), path, progress=False)
    return path


@pytest.fixture(scope="module")
def orphan_index(tmp_path_factory):
    """An index whose checkpoint folder was deleted after the build."""
    folder = tmp_path_factory.mktemp("orphan")
    model = create_checkpoint(folder / "gone", preset="test", seed=3)
    build_index("synthetic:4:2", Retriever.load(model, device="cpu"), folder / "index", progress=False)
    shutil.rmtree(model)
    return folder / "index"


@pytest.fixture(scope="module")
def retrained_index(tmp_path_factory):
    """An index whose checkpoint folder was overwritten by other weights after the build."""
    folder = tmp_path_factory.mktemp("retrained")
    model = create_checkpoint(folder / "model", preset="test", seed=4)
    build_index("synthetic:4:2", Retriever.load(model, device="cpu"), folder / "index", progress=False)
    create_checkpoint(model, preset="test", seed=5)
    return folder / "index"


@pytest.fixture(scope="module")
def default_cache(tmp_path_factory):
    """$T2M_CACHE holding the embedded default's library index, as a first run leaves it
    (a 60-motion synthetic library here instead of the 2000 that a first run embeds)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("T2M_CACHE", str(cache))
        path = default.index_path(default.MODEL_DIR)
    build_index("synthetic:60:0", default.MODEL_DIR, path, progress=False)
    return {"cache": cache, "index": path}


# ------------------------------------------------------------------ the embedded default

def test_search_without_options_uses_the_embedded_default(default_cache):
    done = t2m("search", "a person waves with the left hand", "-k", "3", "--json",
               env={"T2M_CACHE": str(default_cache["cache"])})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    library = MotionIndex.load(default_cache["index"], device="cpu")
    assert len(result["results"]) == 3 and all(hit["motion_id"] in library for hit in result["results"])
    assert "wave_left" in result["results"][0]["name"]
    assert result["tokens"] == ["waves", "left", "hand"]  # the default model leaves stop words out
    # stderr is a pipe, not a terminal: no bars, one summary line at the end
    assert "\r" not in done.stderr and done.stderr.splitlines()[-1].startswith("t2m search: done in ")


def test_similar_and_explain_without_options_use_the_embedded_default(default_cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("T2M_CACHE", str(default_cache["cache"]))
    motion_id = MotionIndex.load(default_cache["index"], device="cpu").ids[5]
    assert t2m_main(["similar", motion_id, "-k", "4", "--device", "cpu", "--json"]) == 0
    similar = json.loads(capsys.readouterr().out)
    assert len(similar["results"]) == 4 and motion_id not in [hit["motion_id"] for hit in similar["results"]]
    clip = tmp_path / "clip.npy"
    np.save(clip, load_spec("synthetic:1:5").items[0].motion.resample(20.0).positions)
    assert t2m_main(["explain", "a person walks", str(clip), "--out", str(tmp_path / "x.png"), "--json"]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["tokens"] == ["walks"] and (tmp_path / "x.png").stat().st_size > 1000


# ------------------------------------------------------------------ an index knows its model

def test_an_index_records_the_checkpoint_that_built_it(index, models):
    from inference_server.model import fingerprint

    record = built_with(index)
    assert record["path"] == str(models["a"].resolve()) and record["fingerprint"] == fingerprint(models["a"])


def test_search_with_the_index_alone_loads_the_model_it_records(index, models, capsys):
    assert t2m_main(["search", "a person walks", "--index", str(index), "-k", "2", "--device", "cpu", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert t2m_main(["search", "a person walks", "--index", str(index), "--model", str(models["a"]), "-k", "2",
                     "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == alone and len(alone["results"]) == 2


def test_index_build_without_a_model_uses_the_default_or_on_update_the_index_own(index, models, tmp_path, capsys):
    from inference_server.model import fingerprint

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    assert t2m_main(["index", "build", "synthetic:10:2", "--out", str(copy), "--update", "--device", "cpu",
                     "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reused"] == 8 and built_with(copy)["fingerprint"] == fingerprint(models["a"])
    fresh = tmp_path / "fresh"
    assert t2m_main(["index", "build", "synthetic:3:2", "--out", str(fresh), "--device", "cpu",
                     "--no-progress", "--json"]) == 0
    assert built_with(fresh)["fingerprint"] == fingerprint(default.MODEL_DIR)


def test_an_index_finds_the_embedded_model_by_fingerprint(default_cache):
    assert default.model_for_index(default_cache["index"]) == default.MODEL_DIR


# ------------------------------------------------------------------ errors before torch

def test_argument_and_file_errors_are_one_line_and_never_load_torch(index, orphan_index, retrained_index, models,
                                                                     tmp_path):
    """Every case runs in one fresh interpreter, which must end without torch imported."""
    cases = [
        (["search"], 2, "the following arguments are required: TEXT"),
        (["search", "walk", "-k", "0"], 1, "-k must be at least 1"),
        (["search", "walk", "--index", str(tmp_path / "none")], 1, "does not exist"),
        (["search", "walk", "--index", str(index), "--model", str(models["b"])], 1, "was built with model"),
        (["search", "walk", "--index", str(orphan_index)], 1, "which is not there: pass --model CKPT"),
        (["search", "walk", "--index", str(retrained_index)], 1, "whose folder now holds other weights"),
        (["search", "walk", "--model", str(tmp_path / "ckpt")], 1, "needs --index INDEX"),
        (["search", "walk", "--server", "tcp://127.0.0.1:1", "--index", str(index)], 1, "either --server"),
        (["similar", "m1", "--index", str(tmp_path)], 1, "not a motion index"),
        (["explain", "walk", str(tmp_path / "no.bvh"), "--out", str(tmp_path / "x.png")], 1, "no such motion file"),
        (["explain", "walk", str(tmp_path / "no.bvh"), "--model", str(tmp_path), "--out", "x.png"], 1,
         "not a checkpoint"),
        (["eval", "--data", "synthetic:4", "--model", str(tmp_path / "none")], 1, "no such checkpoint folder"),
        (["eval", "--data", str(tmp_path / "nowhere")], 1, "data spec"),
        (["index", "build", "synthetic:4", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "i")], 1,
         "no such checkpoint folder"),
        (["index", "info", str(tmp_path / "none")], 1, "does not exist"),
        (["train", "--data", "synthetic:4", "--out", str(tmp_path / "run"), "--epochs", "0"], 1,
         "--epochs must be at least 1"),
        (["serve", "--index", str(tmp_path / "none")], 1, "does not exist"),
    ]
    script = f"""
import contextlib, io, json, sys
from inference_server.cli import main
outcomes = []
for argv in {[argv for argv, _, _ in cases]!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    outcomes.append([code, err.getvalue()])
print(json.dumps({{"outcomes": outcomes, "torch": "torch" in sys.modules}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    for (argv, code, message), (got_code, err) in zip(cases, report["outcomes"]):
        assert got_code == code and message in err, (argv, got_code, err)
        assert "Traceback" not in err and (code == 2 or err.count("\n") == 1), (argv, err)
    assert not report["torch"]


# ------------------------------------------------------------------ progress

def test_progress_bars_only_on_a_terminal_and_forced_by_the_flags():
    piped = t2m("data", "stats", "synthetic:30:1", "--json")
    assert piped.returncode == 0 and json.loads(piped.stdout)["motions"] == 30
    assert "\r" not in piped.stderr and piped.stderr.count("\n") == 1
    assert piped.stderr.startswith("t2m data stats: done in ")
    forced = t2m("data", "stats", "synthetic:30:1", "--json", "--progress")
    assert forced.returncode == 0 and "\r" in forced.stderr and "synthetic" in forced.stderr
    assert "done in" not in forced.stderr

    on_terminal, written = _t2m_on_a_terminal("data", "stats", "synthetic:30:1", "--json")
    assert on_terminal == 0 and "\r" in written and "synthetic" in written and "done in" not in written
    silenced = t2m("data", "stats", "synthetic:30:1", "--json", "--no-progress")
    assert "\r" not in silenced.stderr and silenced.stderr.startswith("t2m data stats: done in ")


def _t2m_on_a_terminal(*argv: str) -> tuple[int, str]:
    """(exit code, what it wrote on stderr) of `t2m ARGV` whose stderr is a pseudo-terminal."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a fresh pty is 0 columns wide
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(leader, chunks))
    reader.start()
    try:
        child = subprocess.run([sys.executable, "-m", "inference_server", *argv], stdout=subprocess.DEVNULL,
                               stderr=follower, timeout=600, cwd=REPO)
    finally:
        os.close(follower)  # the reader now gets EIO once it has read everything
        reader.join(30)
        os.close(leader)
    return child.returncode, b"".join(chunks).decode("utf-8", "replace")


def _drain(fd: int, chunks: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: no writer is left
            return
        if not chunk:
            return
        chunks.append(chunk)
