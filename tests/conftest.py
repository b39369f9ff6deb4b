"""Shared, generic fixtures: where the real data lives, a small HumanML3D folder, the extension registered in bpy."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    """../shared/data next to the checkout (or inside it, or $T2M_SHARED_DATA)."""
    candidates = [Path(os.environ["T2M_SHARED_DATA"])] if os.environ.get("T2M_SHARED_DATA") else []
    candidates += [REPO.parent / "shared" / "data", REPO / "shared" / "data"]
    return next((path for path in candidates if path.is_dir()), candidates[0])


SHARED_DATA = _shared_data()
BANDAI_ROOT = SHARED_DATA / "bandai-namco"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found ({SHARED_DATA})")
    return SHARED_DATA


@pytest.fixture(scope="session")
def bandai_root() -> Path:
    """The Bandai-Namco root (dataset-1 and dataset-2-subset); skips when it is absent."""
    if not (BANDAI_ROOT / "dataset-2-subset" / "data").is_dir():
        pytest.skip(f"Bandai-Namco data not found under {BANDAI_ROOT}")
    return BANDAI_ROOT


@pytest.fixture(scope="session")
def humanml3d_dir(tmp_path_factory) -> Path:
    """A HumanML3D folder written by our exporter from 12 synthetic motions (seed 5)."""
    from inference_server.data import load_spec
    from inference_server.data.export import export_humanml3d
    out = tmp_path_factory.mktemp("humanml3d")
    export_humanml3d(load_spec("synthetic:12:5"), out)
    return out


@pytest.fixture(scope="module")
def blender_addon_registered():
    """The extension registered in the real bpy (factory settings) for a test module."""
    import bpy

    import blender_addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    yield
    blender_addon.unregister()
