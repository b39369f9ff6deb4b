"""Index build / reload / update / atomicity with a real (random-weight, test preset) checkpoint."""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_server.cli import main as t2m_main
from inference_server.errors import ModelError
from inference_server.index import MotionIndex, build_index
from inference_server.model import create_checkpoint
from inference_server.retriever import Retriever

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[1]
BANDAI_CLIPS = ["dataset-2_walk_normal_001", "dataset-2_run_elderly_002",
                "dataset-2_wave-left-hand_active_003", "dataset-2_raise-up-right-hand_youthful_004"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("models")
    return {"a": create_checkpoint(folder / "a", preset="test", seed=0),
            "b": create_checkpoint(folder / "b", preset="test", seed=1)}


@pytest.fixture(scope="module")
def retriever(models):
    return Retriever.load(models["a"], device="cpu")


@pytest.fixture(scope="module")
def bandai_index(bandai_root, retriever, tmp_path_factory):
    """An index of four real Bandai-Namco clips, copied with one broken BVH beside them."""
    folder = tmp_path_factory.mktemp("bandai")
    clips = folder / "clips"
    clips.mkdir()
    for name in BANDAI_CLIPS:
        shutil.copy(bandai_root / "dataset-2-subset" / "data" / f"{name}.bvh", clips)
    (clips / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    report = build_index(f"bvh:{clips}", retriever, folder / "index", progress=False)
    return {"report": report, "path": folder / "index", "clips": clips}


def test_build_reports_motions_skipped_and_bytes(bandai_index):
    report = bandai_index["report"]
    assert report["motions"] == 4 and report["embedded"] == 4 and report["reused"] == 0
    assert [Path(entry["path"]).name for entry in report["skipped"]] == ["broken.bvh"]
    assert report["skipped"][0]["error"]
    on_disk = sum(path.stat().st_size for path in bandai_index["path"].iterdir())
    assert report["bytes"] == on_disk > 0
    assert not list(bandai_index["path"].parent.glob("index.tmp-*"))


def test_reload_gives_back_the_motions_and_their_embeddings(bandai_index, retriever):
    from inference_server.data import load_spec

    index = MotionIndex.load(bandai_index["path"], retriever)
    dataset = load_spec(f"bvh:{bandai_index['clips']}")
    assert sorted(index.ids) == sorted(item.id for item in dataset.items)
    for item in dataset.items:
        row = index.row(item.id)
        meta = index.meta(row)
        assert meta["source"] == item.source and meta["fps"] == pytest.approx(item.motion.fps)
        assert meta["duration"] == pytest.approx(item.motion.duration)
        np.testing.assert_array_equal(index.motion(row).positions, item.motion.positions)
        fresh = retriever.embed_motions([item.motion])[0]
        np.testing.assert_allclose(index.patches(row), fresh, atol=2e-3)  # fp16 store


def test_index_refuses_another_model(bandai_index, models):
    other = Retriever.load(models["b"], device="cpu")
    built = json.loads((bandai_index["path"] / "manifest.json").read_text())["model"]["fingerprint"]
    with pytest.raises(ModelError) as error:
        MotionIndex.load(bandai_index["path"], other)
    assert built in str(error.value) and other.fingerprint in str(error.value)


def test_search_finds_a_clip_by_its_own_patches(bandai_index, retriever):
    index = MotionIndex.load(bandai_index["path"], retriever)
    hits = index.search(index.patches(2)[:40], k=4)
    assert hits[0].row == 2 and len(hits) == 4
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_update_embeds_only_new_and_changed_motions(humanml3d_dir, retriever, tmp_path):
    library = tmp_path / "library"
    shutil.copytree(humanml3d_dir, library)
    spec = f"humanml3d:{library}"
    first = build_index(spec, retriever, tmp_path / "index", storage="int8", progress=False)
    old = MotionIndex.load(tmp_path / "index", retriever)
    old_patches = {motion_id: old.patches(old.row(motion_id)) for motion_id in old.ids}
    joints = sorted((library / "new_joints").glob("*.npy"))
    changed = joints[0]
    np.save(changed, np.load(changed) * np.float32(1.1), allow_pickle=False)
    new = library / "new_joints" / "999999.npy"
    np.save(new, np.load(joints[1])[::-1].copy(), allow_pickle=False)
    shutil.copy(library / "texts" / f"{joints[1].stem}.txt", library / "texts" / "999999.txt")
    (library / "test.txt").write_text((library / "test.txt").read_text() + "999999\n")

    second = build_index(spec, retriever, tmp_path / "index", update=True, progress=False)
    assert (second["embedded"], second["reused"]) == (2, first["motions"] - 1)
    assert second["motions"] == first["motions"] + 1 and second["storage"] == "int8"
    index = MotionIndex.load(tmp_path / "index", retriever)
    for motion_id, patches in old_patches.items():
        if motion_id != changed.stem:
            np.testing.assert_array_equal(index.patches(index.row(motion_id)), patches)
    fresh = retriever.embed_motions([index.motion(index.row(changed.stem))])[0]
    assert np.abs(index.patches(index.row(changed.stem)) - fresh).max() < 0.02
    assert np.abs(index.patches(index.row(changed.stem)) - old_patches[changed.stem]).max() > 0.02


def test_build_refuses_to_replace_a_folder_that_is_no_index(retriever, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("do not delete")
    with pytest.raises(ModelError, match="not a motion index"):
        build_index("synthetic:2:1", retriever, tmp_path / "precious", progress=False)
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "do not delete"


def test_cli_search_reports_a_wrong_model_in_one_line(models, retriever, tmp_path, capsys):
    build_index("synthetic:3:4", retriever, tmp_path / "index", progress=False)
    code = t2m_main(["search", "walk", "--index", str(tmp_path / "index"), "--model", str(models["b"]),
                     "--device", "cpu", "--json"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.count("\n") == 1 and "built with model" in captured.err


def test_cli_info_and_similar(models, retriever, tmp_path, capsys):
    build_index("synthetic:10:6", retriever, tmp_path / "index", storage="pq", progress=False,
                pq_subspaces=8)
    assert t2m_main(["index", "info", str(tmp_path / "index"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["motions"] == 10 and info["storage"] == "pq" and info["model"]["fingerprint"] == retriever.fingerprint
    index = MotionIndex.load(tmp_path / "index", retriever)
    motion_id = index.ids[4]
    assert t2m_main(["similar", motion_id, "--index", str(tmp_path / "index"), "--model", str(models["a"]),
                     "-k", "3", "--device", "cpu", "--json"]) == 0
    similar = json.loads(capsys.readouterr().out)
    assert len(similar["results"]) == 3 and motion_id not in [r["motion_id"] for r in similar["results"]]


def test_cli_search_through_a_server(models, retriever, tmp_path, capsys):
    from inference_server.engine import Engine
    from inference_server.server import Server

    build_index("synthetic:6:7", retriever, tmp_path / "index", progress=False)
    index = MotionIndex.load(tmp_path / "index", retriever)
    server = Server(Engine(retriever, index), bind="tcp://127.0.0.1:*")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(10)
        assert t2m_main(["search", "a person jumps", "-k", "2", "--server", server.address, "--json"]) == 0
        remote = json.loads(capsys.readouterr().out)
        assert t2m_main(["search", "a person jumps", "-k", "2", "--index", str(tmp_path / "index"),
                         "--model", str(models["a"]), "--device", "cpu", "--json"]) == 0
        local = json.loads(capsys.readouterr().out)
    finally:
        server.stop()
        thread.join(10)
    assert [r["motion_id"] for r in remote["results"]] == [r["motion_id"] for r in local["results"]]
    assert remote["tokens"] == local["tokens"]
