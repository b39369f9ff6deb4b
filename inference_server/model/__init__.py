"""MotionColBert: JAMI + ViT motion encoder, masked-LM text encoder, token-patch MaxSim.

create_checkpoint(out_dir, preset="test", seed=0, stats=None) -> Path saves an untrained
model quickly (for tests); load_model(path, device) rebuilds any checkpoint offline.
"""
from inference_server.model.checkpoint import create_checkpoint, fingerprint, load_model, read_config, save_checkpoint
from inference_server.model.colbert import ModelConfig, MotionColBert
from inference_server.model.presets import PRESETS, Preset, get_preset

__all__ = ["create_checkpoint", "fingerprint", "load_model", "read_config", "save_checkpoint",
           "ModelConfig", "MotionColBert", "PRESETS", "Preset", "get_preset"]
