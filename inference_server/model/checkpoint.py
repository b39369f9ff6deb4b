"""Checkpoint = a directory: config.json + model.safetensors + the tokenizer's files. No pickle.

config.json holds everything needed to rebuild the model offline: the preset (every
architecture hyper-parameter), pooling, the text model's HF config, the body-part channel
map, the angle statistics of the training set, and what the trainer recorded. The
fingerprint of a checkpoint is the sha256 of its model.safetensors.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from inference_server.errors import ModelError
from inference_server.jami import PART_CHANNEL_INDEX, AngleStats
from inference_server.model.colbert import ModelConfig, MotionColBert
from inference_server.model.identity import CONFIG_FILE, WEIGHTS_FILE, fingerprint, is_checkpoint
from inference_server.model.motion import MotionEncoder
from inference_server.model.presets import get_preset, preset_from_dict
from inference_server.model.text import TextEncoder

FORMAT = "t2m-motioncolbert"
VERSION = 1


def save_checkpoint(model: MotionColBert, out_dir: str | Path, stats: AngleStats, name: str | None = None,
                    training: dict | None = None, extras: Callable[[Path], None] | None = None) -> Path:
    """Write the checkpoint directory (atomically replacing an existing one) and return its path.

    `extras(folder)` may add files (the trainer's resume state) before the directory goes live.
    """
    from safetensors.torch import save_model
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        # save_model drops the tied duplicate (MLM decoder = word embeddings) and restores it on load
        save_model(model, str(staging / WEIGHTS_FILE))
        model.text.tokenizer.save_pretrained(str(staging))
        config = {
            "format": FORMAT, "version": VERSION,
            "name": name or f"motioncolbert-{model.config.preset['name']}-{model.pooling}",
            "model": model.config.to_dict(),
            "text_config": model.text.hf_config(),
            "angle_stats": stats.to_dict(),
            "training": training or {},
        }
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_json_default))
        if extras is not None:
            extras(staging)
        _umask_permissions(staging)
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def read_config(path: str | Path) -> dict:
    path = Path(path)
    config_file = path / CONFIG_FILE
    if not is_checkpoint(path):
        raise ModelError(f"{path}: not a checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"{config_file}: unreadable checkpoint config: {error}") from error
    if config.get("format") != FORMAT:
        raise ModelError(f"{config_file}: not a {FORMAT} checkpoint (format {config.get('format')!r})")
    return config


def load_model(path: str | Path, device: str | torch.device = "cpu") -> MotionColBert:
    """Rebuild the model from the directory alone (offline), in eval mode on `device`.

    The result carries `.angle_stats` (AngleStats), `.checkpoint_config` (config.json) and
    `.fingerprint` (sha256 of the weights).
    """
    from safetensors.torch import load_model as load_weights
    path = Path(path)
    config = read_config(path)
    try:
        model_config = ModelConfig(**config["model"])
        preset = preset_from_dict(model_config.preset)
        text = TextEncoder.from_saved_config(config["text_config"], path, max_tokens=preset.max_text_tokens,
                                             mask_punctuation=model_config.mask_punctuation,
                                             mask_stopwords=model_config.mask_stopwords)
        motion = MotionEncoder(preset.vit, model_config.part_channels, preset.vit_overrides, preset.drop_path)
        model = MotionColBert(text, motion, model_config)
        stats = AngleStats.from_dict(config["angle_stats"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path / CONFIG_FILE}: inconsistent checkpoint config: {error}") from error
    try:
        load_weights(model, str(path / WEIGHTS_FILE), strict=True)
    except (RuntimeError, OSError) as error:
        raise ModelError(f"{path / WEIGHTS_FILE}: weights do not fit the config: {error}") from error
    model.angle_stats = stats
    model.checkpoint_config = config
    model.fingerprint = fingerprint(path)
    return model.to(device).eval()


def identity_stats() -> AngleStats:
    """Mean 0, std 1 on every channel: for untrained test models without a training set."""
    import numpy as np
    channels = sum(len(part) for part in PART_CHANNEL_INDEX)
    return AngleStats(mean=np.zeros(channels, np.float32), std=np.ones(channels, np.float32))


def create_checkpoint(out_dir: str | Path, preset: str = "test", seed: int = 0,
                      stats: AngleStats | None = None, pooling: str = "maxsim") -> Path:
    """Save an untrained model (random ViT + heads, the text model's own weights) and return its path.

    preset "test" (2-layer ViT of width 64 + MiniLM, d=32) builds and loads in about a second;
    other helpers use it for tests. stats None = identity statistics.
    """
    torch.manual_seed(seed)
    model = MotionColBert.build(get_preset(preset), PART_CHANNEL_INDEX, pooling=pooling)
    return save_checkpoint(model, out_dir, stats or identity_stats(), training={"trained": False, "seed": seed})


def _replace_dir(staging: Path, target: Path) -> None:
    """Swap staging into place; the old directory (if any) is removed after the swap."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask_permissions(folder: Path) -> None:
    """mkdtemp and safetensors create owner-only entries; give them the usual umask-based modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for entry in folder.iterdir():
        os.chmod(entry, 0o666 & ~umask)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in config.json")
