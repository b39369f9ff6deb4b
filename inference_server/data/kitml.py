"""KIT-ML folders: the HumanML3D layout with 21 MMM joints at 12.5 fps (kept at 12.5 fps).

KIT joint order (MMM): 0 root, 1 BP (pelvis back), 2 BT (thorax), 3 BLN (lower neck),
4 BUN (upper neck / head), 5 LS, 6 LE, 7 LW, 8 RS, 9 RE, 10 RW, 11 LH, 12 LK, 13 LA,
14 LMrot (ball of the foot), 15 LF (toe tip), 16 RH, 17 RK, 18 RA, 19 RMrot, 20 RF.

Map into SMPL-22 (the paper zero-fills joints KIT lacks; we place them instead):
  pelvis<-root, hips<-LH/RH, knees<-LK/RK, ankles<-LA/RA, feet<-LMrot/RMrot (SMPL's foot
  joint is the ball of the foot), neck<-BLN, head<-BUN, shoulders<-LS/RS, elbows<-LE/RE,
  wrists<-LW/RW; spine1-3 interpolated along root-BP-BT-BLN like every BVH rig
  (kinematics.SPINE_FRACTIONS); collars interpolated 40 % of the way from neck to shoulder.
Units: KIT files come in millimetres or metres; the leg length decides (-> metres).
"""
from __future__ import annotations

import numpy as np

from inference_server.data.humanml3d import scan_folder
from inference_server.data.kinematics import SPINE_FRACTIONS, interpolate_chain
from inference_server.errors import DataError

FPS = 12.5
KIT_JOINTS = ["root", "BP", "BT", "BLN", "BUN", "LS", "LE", "LW", "RS", "RE", "RW",
              "LH", "LK", "LA", "LMrot", "LF", "RH", "RK", "RA", "RMrot", "RF"]
# SMPL-22 joint -> KIT index; None: interpolated (spine1-3, collars)
KIT_TO_SMPL22 = [0, 11, 16, None, 12, 17, None, 13, 18, None, 14, 19, 3,
                 None, None, 4, 5, 8, 6, 9, 7, 10]
SPINE_CHAIN = [0, 1, 2, 3]
COLLAR_FRACTION = 0.4  # from the neck towards the shoulder


def kit_to_smpl22(positions: np.ndarray) -> np.ndarray:
    """(T, 21, 3) KIT positions (mm or m) -> (T, 22, 3) SMPL-22 order, metres."""
    positions = positions.astype(np.float64) * _metres_per_unit(positions)
    out = np.empty((positions.shape[0], 22, 3))
    for smpl, kit in enumerate(KIT_TO_SMPL22):
        if kit is not None:
            out[:, smpl] = positions[:, kit]
    out[:, [3, 6, 9]] = interpolate_chain(positions[:, SPINE_CHAIN], SPINE_FRACTIONS)
    neck = out[:, 12]
    out[:, 13] = neck + COLLAR_FRACTION * (out[:, 16] - neck)
    out[:, 14] = neck + COLLAR_FRACTION * (out[:, 17] - neck)
    return out.astype(np.float32)


def _metres_per_unit(positions: np.ndarray) -> float:
    leg = np.linalg.norm(positions[:, 11] - positions[:, 12], axis=-1) + \
        np.linalg.norm(positions[:, 12] - positions[:, 13], axis=-1)
    return 0.001 if float(np.median(leg)) > 20 else 1.0


def scan(arg: str | None, progress: bool = False):
    if not arg:
        raise DataError("kitml: needs a folder, e.g. kitml:KIT-ML/")
    return scan_folder(arg, FPS, 21, kit_to_smpl22, "kitml", progress)
