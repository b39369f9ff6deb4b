"""FBX / glTF libraries: rigs of the zoo animated by the add-on and exported by Blender's
own exporters (in a bpy child process), then read back through Blender's importers (in
another child process), mapped to SMPL-22, indexed and searched."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference_server.angles import motion_angles
from inference_server.cli import main as t2m_main
from inference_server.data import load_file, load_spec
from inference_server.data.bvh import read_mapped
from rig_zoo import base_motion, bvh_text, make_rig

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the bpy module")
HERE = Path(__file__).resolve().parent
MODEL = HERE.parent / "inference_server" / "default" / "model"
RIGS = [  # convention, pose, object scale, Y-up armature, roll seed, clips, format
    ("mixamo", "A", 0.01, True, 1, [0, 1], "fbx"),
    ("nameless", "T", 1.0, False, 2, [1], "fbx"),
    ("ue5", "A", 100.0, False, 3, [0], "fbx"),
    ("daz_genesis", "T", 1.0, True, 4, [1], "fbx"),
    ("character_creator", "T", 1.0, False, 5, [0], "glb"),
]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """(folder, source motions): FBX/glb files written by bpy, plus a corrupt .fbx."""
    work = tmp_path_factory.mktemp("fbx_zoo")
    out = work / "library"
    out.mkdir()
    sources = []
    for number, (frames, seed) in enumerate([(40, 0), (30, 1)]):
        bvh = work / f"source{number}.bvh"
        bvh.write_text(bvh_text(make_rig("smpl"), base_motion(frames, seed)))
        motion = read_mapped(bvh)[0]
        np.save(work / f"source{number}.npy", motion.positions)
        sources.append(motion)
    job = {"out": str(out), "motions": [str(work / f"source{n}.npy") for n in range(2)], "fps": sources[0].fps,
           "rigs": [{"convention": c, "pose": p, "scale": s, "y_up": y, "roll_seed": r, "clips": k, "format": f}
                    for c, p, s, y, r, k, f in RIGS]}
    (work / "job.json").write_text(json.dumps(job))
    subprocess.run([sys.executable, str(HERE / "blender_export_zoo.py"), str(work / "job.json")], check=True,
                   capture_output=True, timeout=600)
    (out / "broken.fbx").write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00" + bytes(range(256)) * 4)
    (out / "mixamo_A.txt").write_text("a person walks and turns\n")
    return out, sources


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("T2M_CACHE", str(tmp_path / "cache"))


def test_fbx_library_reads_every_clip_with_the_source_joint_angles(library):
    folder, sources = library
    dataset = load_spec(f"fbx:{folder}")
    ids = sorted(item.id for item in dataset.items)
    assert ids == ["daz_genesis_T", "mixamo_A/T2M clip0", "mixamo_A/T2M clip1", "nameless_T", "ue5_A"]
    [skipped] = dataset.skipped
    assert skipped["path"].endswith("broken.fbx") and "broken.fbx:" in skipped["error"]
    conventions = {entry["convention"]: entry for entry in dataset.skeletons}
    assert set(conventions) == {"mixamo", "unknown", "ue5", "daz_genesis"}
    assert conventions["unknown"]["how"] == "topology" and conventions["ue5"]["confidence"] == 1.0
    by_id = {item.id: item for item in dataset.items}
    assert by_id["mixamo_A/T2M clip0"].captions == ["a person walks and turns"]
    clip_of = {"daz_genesis_T": 1, "mixamo_A/T2M clip0": 0, "mixamo_A/T2M clip1": 1, "nameless_T": 1, "ue5_A": 0}
    for motion_id, number in clip_of.items():
        item = by_id[motion_id]
        assert item.motion.fps == sources[number].fps
        assert item.motion.num_frames == sources[number].num_frames
        errors = np.abs(motion_angles(item.motion)[:, 3:] - motion_angles(sources[number])[:, 3:])
        assert errors.max() <= 2.0, (motion_id, float(errors.max()))  # retarget + FBX round trip + mapping
        # the same size in metres, whatever the object scale (0.01 .. 100)
        leg = np.linalg.norm(np.diff(item.motion.positions[:, [1, 4, 7]], axis=1), axis=-1).sum(-1)
        source_leg = np.linalg.norm(np.diff(sources[number].positions[:, [1, 4, 7]], axis=1), axis=-1).sum(-1)
        np.testing.assert_allclose(leg, source_leg, rtol=0.02)


def test_gltf_library_and_single_files(library):
    folder, sources = library
    dataset = load_spec(f"gltf:{folder}")
    assert [item.id for item in dataset.items] == ["character_creator_T"]
    assert dataset.skeletons[0]["convention"] == "character_creator"
    assert load_file(folder / "nameless_T.fbx").motion.num_frames == sources[1].num_frames
    assert len(load_spec(str(folder / "ue5_A.fbx")).items) == 1  # a bare .fbx path is an fbx spec


def test_index_build_search_and_update_on_an_fbx_folder(library, tmp_path, capsys):
    folder, _ = library
    index = tmp_path / "fbx.index"
    assert t2m_main(["index", "build", f"fbx:{folder}", "--model", str(MODEL), "--out", str(index), "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["motions"] == 5 and [Path(s["path"]).name for s in built["skipped"]] == ["broken.fbx"]
    assert t2m_main(["search", "a person walks", "--index", str(index), "--model", str(MODEL), "-k", "5",
                     "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["results"]
    assert {result["motion_id"] for result in found} == {
        "daz_genesis_T", "mixamo_A/T2M clip0", "mixamo_A/T2M clip1", "nameless_T", "ue5_A"}
    cached = sorted(p.name for p in (tmp_path / "cache" / "blender_import").iterdir())
    assert t2m_main(["index", "build", f"fbx:{folder}", "--model", str(MODEL), "--out", str(index), "--update",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["motions"] == 5
    assert sorted(p.name for p in (tmp_path / "cache" / "blender_import").iterdir()) == cached  # no re-import


def test_stats_on_a_missing_folder_and_without_blender(tmp_path, monkeypatch, capsys):
    assert t2m_main(["data", "stats", f"fbx:{tmp_path / 'nope'}", "--json"]) == 1
    assert "no such FBX file or folder" in capsys.readouterr().err
    (tmp_path / "a.fbx").write_bytes(b"x")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert t2m_main(["data", "stats", f"fbx:{tmp_path}", "--json"]) == 1
    assert "needs Blender" in capsys.readouterr().err


def test_a_blender_that_does_not_start_is_one_clear_error(library, monkeypatch, capsys):
    folder, _ = library
    monkeypatch.setenv("T2M_BLENDER", sys.executable + "-no-such-blender")
    assert t2m_main(["data", "stats", f"fbx:{folder}", "--json"]) == 1
    assert "could not start Blender" in capsys.readouterr().err
    monkeypatch.setenv("T2M_BLENDER", "/bin/false")
    assert t2m_main(["data", "stats", f"fbx:{folder}", "--json"]) == 1
    assert "could not start Blender" in capsys.readouterr().err
