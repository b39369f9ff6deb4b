"""Pictures (JAMI png, preview gif, relevance png) and the `t2m motion` commands."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from inference_server.angles import CHANNELS, motion_angles
from inference_server.cli import motion as motion_cli
from inference_server.errors import DataError
from inference_server.jami import AngleStats
from inference_server.motion import SMPL22_PARENTS, Motion, smpl22_skeleton
from inference_server.pictures import save_jami_png, save_preview_gif, save_relevance_png

BANDAI_CLIP = Path("dataset-2-subset") / "data" / "dataset-2_raise-up-left-hand_active_001.bvh"  # under bandai_root


def waving_motion(frames: int = 40, fps: float = 20.0) -> Motion:
    """A T-pose whose left forearm swings up and down (SMPL-22, Y-up)."""
    offsets = smpl22_skeleton().offsets
    pose = np.zeros((22, 3), dtype=np.float32)
    pose[0] = [0, 0.9, 0]
    for joint in range(1, 22):
        pose[joint] = pose[SMPL22_PARENTS[joint]] + offsets[joint]
    positions = np.repeat(pose[None], frames, axis=0)
    for t in range(frames):
        swing = Rotation.from_euler("z", 60 * np.sin(t / 3), degrees=True)
        positions[t, 20] = pose[18] + swing.apply(pose[20] - pose[18])
    return Motion.smpl22(positions, fps)


def _png(path: Path) -> np.ndarray:
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_jami_png_is_written_and_shows_the_moving_part(tmp_path):
    out = save_jami_png(waving_motion(), tmp_path / "sub" / "jami.png", title="wave")
    pixels = _png(out)
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 500
    assert pixels.std() > 10   # not a blank picture
    with_stats = save_jami_png(waving_motion(), tmp_path / "stats.png",
                               stats=AngleStats(np.zeros(29), np.full(29, 50.0)))
    assert not np.array_equal(_png(with_stats), pixels)


def test_preview_gif_has_one_frame_per_step(tmp_path):
    out = save_preview_gif(waving_motion(frames=20, fps=20), tmp_path / "preview.gif", fps=10)
    with Image.open(out) as image:
        assert image.format == "GIF" and image.n_frames == 10
        image.seek(0)
        first = np.asarray(image.convert("RGB"), dtype=np.int16)
        image.seek(5)
        later = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert first.std() > 5 and np.abs(first - later).sum() > 0   # the figure moves


def test_relevance_png_rows_per_token_and_shape_check(tmp_path):
    relevance = np.random.default_rng(0).random((3, 14, 14)).astype(np.float32)
    out = save_relevance_png(["wave", "left", "hand"], relevance, tmp_path / "rel.png", "a person waves")
    tall = _png(out)
    short = _png(save_relevance_png(["wave"], relevance[:1], tmp_path / "one.png", "one token"))
    assert tall.shape[0] > 2 * short.shape[0]
    with pytest.raises(DataError, match="relevance must be"):
        save_relevance_png(["a", "b"], relevance, tmp_path / "bad.png", "")
    with pytest.raises(DataError, match="relevance must be"):
        save_relevance_png(["a"], relevance[:1, :10], tmp_path / "bad.png", "")


def run_cli(*argv: str) -> dict:
    """Parse and run a `t2m motion ...` command with the real parser and handlers."""
    parser = argparse.ArgumentParser(prog="t2m")
    motion_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return json.loads(json.dumps(args.handler(args)))


@pytest.fixture
def npy_motion(tmp_path) -> tuple[Path, Motion]:
    motion = waving_motion(frames=30)
    path = tmp_path / "new_joints" / "000001.npy"
    path.parent.mkdir()
    np.save(path, motion.positions)
    return path, motion


def test_cli_angles_writes_one_row_per_frame(npy_motion, tmp_path):
    path, motion = npy_motion
    result = run_cli("motion", "angles", str(path), "--out", str(tmp_path / "a.csv"), "--json")
    assert result["frames"] == 30 and result["out"] == str(tmp_path / "a.csv")
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0].split(",") == CHANNELS
    table = np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=1)
    assert table.shape == (30, 29)
    assert np.allclose(table, motion_angles(motion), atol=1e-3)


def test_cli_jami_and_preview(npy_motion, tmp_path):
    path, _ = npy_motion
    jami = run_cli("motion", "jami", str(path), "--out", str(tmp_path / "j.png"))
    assert jami["valid_frames"] == 30 and _png(tmp_path / "j.png").std() > 10
    preview = run_cli("motion", "preview", str(path), "--out", str(tmp_path / "p.gif"), "--fps", "5")
    assert preview["frames"] == 8 and (tmp_path / "p.gif").stat().st_size > 1000


def test_cli_errors_name_the_file(npy_motion, tmp_path):
    path, _ = npy_motion
    with pytest.raises(DataError, match="no such file"):
        run_cli("motion", "angles", str(tmp_path / "missing.bvh"), "--out", str(tmp_path / "a.csv"))
    (tmp_path / "stats.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="stats.json"):
        run_cli("motion", "jami", str(path), "--out", str(tmp_path / "j.png"), "--stats", str(tmp_path / "stats.json"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot write"):
        run_cli("motion", "angles", str(path), "--out", str(blocker / "a.csv"))


def test_cli_on_a_bandai_bvh(tmp_path, bandai_root):
    clip = bandai_root / BANDAI_CLIP
    result = run_cli("motion", "angles", str(clip), "--out", str(tmp_path / "a.csv"), "--json")
    table = np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=1)
    assert table.shape == (result["frames"], 29) and result["frames"] > 20
    assert np.isfinite(table).all()
    # "raise up left hand": the left shoulder swings far more than the right one.
    swing = table.max(axis=0) - table.min(axis=0)
    assert swing[CHANNELS.index("l_shoulder_adduction")] > 2 * swing[CHANNELS.index("r_shoulder_adduction")]
    run_cli("motion", "jami", str(clip), "--out", str(tmp_path / "j.png"))
    assert _png(tmp_path / "j.png").std() > 10
