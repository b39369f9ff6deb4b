"""A small real library for the sequence tests and bench: one synthetic clip of every action
of inference_server/data/synthetic_actions.py (walk, wave_right, sit_down and 31 others),
captioned with the action's phrases, indexed with the embedded default model; a real
`t2m serve` on it; and the joint-angle checks that tell a walk, a right-hand wave and a
sit-down apart.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a person walks forward, then waves with the right hand, then sits down"
STEP_ACTIONS = ["walk", "wave_right", "sit_down"]
# The clips a step may pick: "walks forward" says nothing of the pace, so a forward walk of any
# pace is a right answer for it (the model's choice among them is not what these tests check).
STEP_PICKS = [("walk", "walk_fast", "walk_slow"), ("wave_right",), ("sit_down",)]


def fits_steps(motion_ids: list[str]) -> bool:
    """Whether one pick per step names a clip of that step's action."""
    return len(motion_ids) == len(STEP_PICKS) and all(
        motion_id in picks for motion_id, picks in zip(motion_ids, STEP_PICKS))
CLIP_SECONDS = 3.0
# The machine is shared: the server gets two threads.
ENV = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")


def build_library(out: Path) -> tuple[Path, Path]:
    """(index folder, model folder): every synthetic action as one 3 s clip, id = action key."""
    from inference_server.data import Dataset
    from inference_server.data.synthetic import motion_for
    from inference_server.data.synthetic_actions import LIBRARY
    from inference_server.default import MODEL_DIR
    from inference_server.index import build_index
    from inference_server.motion import MotionItem

    items = [MotionItem(id=key, name=key.replace("_", " "), motion=motion_for([key], seed=3, seconds=CLIP_SECONDS),
                        captions=[f"a person {phrase}" for phrase in action.phrases], source=f"synthetic action {key}",
                        split="test", labels={"actions": [key]})
             for key, action in LIBRARY.items()]
    index = out / "index"
    build_index(Dataset(items, spec="synthetic actions"), MODEL_DIR, index, storage="fp16", progress=False)
    return index, MODEL_DIR


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(index: Path, model: Path, log_path: Path, code: Path = ROOT):
    """`t2m serve` on INDEX (CPU) from the source tree `code`; yields its address once it answers."""
    address = f"tcp://127.0.0.1:{free_port()}"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen([sys.executable, "-m", "inference_server", "serve", "--index", str(index),
                                    "--model", str(model), "--bind", address, "--device", "cpu"],
                                   cwd=code, env=dict(ENV, PYTHONPATH=str(code)), stdout=log, stderr=log)
    try:
        _wait_until_serving(address, process, log_path)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_serving(address: str, process, log_path: Path) -> None:
    from bridge.client import Client
    from bridge.protocol import ServerUnreachable

    deadline = time.monotonic() + 300
    with Client(address, timeout=1.0, retries=0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"t2m serve exited: {log_path.read_text()[-2000:]}")
            try:
                client.call("info")
                return
            except ServerUnreachable:
                continue
    raise RuntimeError("t2m serve did not answer within 300 s")


# ---------------------------------------------------------------- what the joint angles show

def segment_starts(lengths: list[int], blend_frames: int) -> list[int]:
    """The frame each clip starts (blending in) at in the stitched motion, for clips of at
    least 2 x blend_frames frames (bridge/stitch.py: B overlaps A's last blend_frames)."""
    assert min(lengths) >= 2 * blend_frames, lengths
    return [0] + list(np.cumsum([length - blend_frames for length in lengths[:-1]]))


def step_features(angles: np.ndarray) -> dict:
    """Per-part measures (degrees) of joint angles (T, 29): how much the hips swing, how far
    the right and left upper arms are raised sideways, how bent the hips and knees end."""
    from inference_server.angles import CHANNELS

    channel = {name: angles[:, CHANNELS.index(name)] for name in CHANNELS}
    return {"hip_swing": float(min(channel["r_hip_flexion"].std(), channel["l_hip_flexion"].std())),
            "knee_range": float(np.ptp(channel["r_knee_flexion"])),
            "right_arm_raise": float(-np.median(channel["r_shoulder_adduction"])),
            "left_arm_raise": float(-np.median(channel["l_shoulder_adduction"])),
            "end_hip_flexion": float(np.mean([channel["r_hip_flexion"][-5:], channel["l_hip_flexion"][-5:]])),
            "end_knee_flexion": float(np.mean([channel["r_knee_flexion"][-5:], channel["l_knee_flexion"][-5:]]))}


def looks_like(features: dict) -> str:
    """"walk", "wave_right", "sit_down" or "other" from step_features()."""
    if features["end_hip_flexion"] > 60 and features["end_knee_flexion"] > 60:
        return "sit_down"
    if features["right_arm_raise"] > 60 and features["left_arm_raise"] < 40 and features["hip_swing"] < 5:
        return "wave_right"
    if features["hip_swing"] > 8 and features["knee_range"] > 30 and features["right_arm_raise"] < 40:
        return "walk"
    return "other"


def join_smoothness(positions: np.ndarray, starts: list[int], blend_frames: int) -> dict:
    """How smooth the joins of a stitched motion (T, 22, 3) metres are, from second
    differences (how far a point lands from where its last step would take it): at each join
    (the overlap and a frame either side) for the root, and for every joint against the
    largest such change anywhere else (inside the clips)."""
    change = np.linalg.norm(positions[2:] - 2 * positions[1:-1] + positions[:-2], axis=-1)  # (T-2, 22)
    joins = [np.arange(max(start - 2, 0), min(start + blend_frames, len(change))) for start in starts[1:]]
    inside = np.ones(len(change), dtype=bool)
    for window in joins:
        inside[window] = False
    return {"root_jump_m": [float(change[window, 0].max()) for window in joins],
            "joint_change_at_joins_m": [float(change[window].max()) for window in joins],
            "joint_change_inside_m": float(change[inside].max())}
