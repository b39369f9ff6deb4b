"""MotionColBert: JAMI + ViT motion encoder, masked-LM text encoder, token-patch MaxSim.

create_checkpoint(out_dir, preset="test", seed=0, stats=None) -> Path saves an untrained
model quickly (for tests); load_model(path, device) rebuilds any checkpoint offline. The
names below are imported on first use, so that the torch-free parts (presets.py,
identity.py) load without torch.
"""
import importlib

_HOMES = {"create_checkpoint": "checkpoint", "load_model": "checkpoint", "read_config": "checkpoint",
          "save_checkpoint": "checkpoint", "fingerprint": "identity", "ModelConfig": "colbert",
          "MotionColBert": "colbert", "PRESETS": "presets", "Preset": "presets", "get_preset": "presets"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
