"""MotionColBert: text tokens and motion patches in one d-dimensional space, scored by MaxSim."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from inference_server.jami import PATCH_WINDOWS, windows_of_frames
from inference_server.maxsim import POOLINGS, pooled_scores
from inference_server.model.grounding_loss import grounding_loss
from inference_server.model.loss import contrastive_loss, initial_log_scale, total_loss
from inference_server.model.motion import MotionEncoder
from inference_server.model.presets import DEFAULT_TEMPERATURE, Preset
from inference_server.model.text import TextEncoder


@dataclass
class ModelConfig:
    """Every architecture choice; stored in the checkpoint's config.json under "model"."""
    preset: dict                        # Preset.to_dict() (with any overrides applied)
    part_channels: list[list[int]]      # channel indices of each of the 14 body parts
    pooling: str = "maxsim"
    mask_punctuation: bool = False
    mlm_weight: float = 0.2
    mlm_captions: int = 16              # the MLM loss uses the first N captions of a batch
    extra: dict = field(default_factory=dict)
    # Zero the patches of windows that hold only JAMI padding (absent = False: the paper's way,
    # and how checkpoints made before this option were trained).
    mask_padding: bool = False
    # Initial temperature of the learnable logit scale. Adam moves the log scale by at most about
    # lr per step, so on short budgets the temperature stays near where it starts.
    temperature: float = DEFAULT_TEMPERATURE
    # Stop words ("a", "the", "person", "with", ...) do not count in the score (text.STOP_WORDS).
    mask_stopwords: bool = False
    # Training only: MaxSim's max over patches replaced by a softmax-weighted mean at this
    # softness (cosine units), so early gradients reach every patch; inference uses the max.
    train_softness: float | None = None
    # Weight of the side-grounding loss (model/grounding_loss.py): "left hand" aligns to the
    # left arm. 0 (absent): off, how checkpoints made before this option were trained.
    grounding_weight: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def dim(self) -> int:
        return int(self.preset["dim"])


class MotionColBert(nn.Module):
    def __init__(self, text: TextEncoder, motion: MotionEncoder, config: ModelConfig):
        super().__init__()
        if config.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {config.pooling!r}; choose one of {POOLINGS}")
        self.config = config
        self.text = text
        self.motion = motion
        self.text_proj = nn.Linear(text.hidden_size, config.dim)
        self.motion_proj = nn.Linear(motion.width, config.dim)
        self.log_scale = nn.Parameter(torch.tensor(initial_log_scale(config.temperature)))

    @classmethod
    def build(cls, preset: Preset, part_channels: list[list[int]], pooling: str = "maxsim",
              pretrained: bool | str = False, allow_download: bool = False, mask_punctuation: bool = False,
              mlm_weight: float = 0.2, mlm_captions: int = 16, mask_padding: bool = True,
              temperature: float = DEFAULT_TEMPERATURE, mask_stopwords: bool = False,
              train_softness: float | None = None, grounding_weight: float = 0.0) -> "MotionColBert":
        """A fresh model: the text model's own weights (always), ViT weights only if `pretrained`;
        the text layers below the preset's `text_trainable_layers` frozen."""
        text = TextEncoder.pretrained(preset.text_model, allow_download=allow_download,
                                      max_tokens=preset.max_text_tokens, mask_punctuation=mask_punctuation,
                                      mask_stopwords=mask_stopwords)
        text.freeze_below(preset.text_trainable_layers)
        motion = MotionEncoder(preset.vit, part_channels, preset.vit_overrides, preset.drop_path,
                               pretrained=pretrained, pretrained_tag=preset.vit_pretrained_tag)
        config = ModelConfig(preset.to_dict(), part_channels, pooling, mask_punctuation, mlm_weight, mlm_captions,
                             mask_padding=mask_padding, temperature=temperature, mask_stopwords=mask_stopwords,
                             train_softness=train_softness, grounding_weight=grounding_weight)
        return cls(text, motion, config)

    @property
    def pooling(self) -> str:
        return self.config.pooling

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """-> (B, L, d) L2-normalised token vectors (all positions; mask them with valid_mask)."""
        return F.normalize(self.text_proj(self.text(input_ids, attention_mask)).float(), dim=-1)

    def encode_motion(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, 224, 29) normalised angles -> (B, 196, d) L2-normalised patch vectors (zero vectors
        for padding-only windows when the config masks padding)."""
        patches = F.normalize(self.motion_proj(self.motion(angles)).float(), dim=-1)
        if self.config.mask_padding:
            patches = patches * padding_patch_mask(angles)[..., None].to(patches.dtype)
        return patches

    def scores(self, text: torch.Tensor, valid_mask: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        # in float32 even under bf16 autocast: bf16 cosines are too coarse once scaled by up to 100
        softness = self.config.train_softness if self.training else None
        with torch.autocast(text.device.type, enabled=False):
            return pooled_scores(text.float(), motion.float(), valid_mask, self.pooling, softness)

    def forward(self, angles, input_ids, attention_mask, valid_mask,
                mlm_input_ids=None, mlm_attention_mask=None, mlm_labels=None, positives=None,
                grounding_targets=None) -> dict:
        """One training step's losses; everything goes through forward so DDP sees all parameters.
        `positives` (B, B) bool: pairs that match besides the diagonal (see contrastive_loss);
        `grounding_targets` (B, L, 14) bool: the side-grounding loss's parts per word."""
        text = self.encode_text(input_ids, attention_mask)
        motion = self.encode_motion(angles)
        contrastive = contrastive_loss(self.scores(text, valid_mask, motion), self.log_scale, positives)
        mlm = None
        if mlm_input_ids is not None and self.config.mlm_weight > 0:
            mlm = self.text.mlm_loss(mlm_input_ids, mlm_attention_mask, mlm_labels)
        loss = total_loss(contrastive, mlm, self.config.mlm_weight)
        grounding = None
        if grounding_targets is not None and self.config.grounding_weight > 0:
            grounding = grounding_loss(text, motion, grounding_targets)
            if grounding is not None:
                loss = loss + self.config.grounding_weight * grounding
        return {"loss": loss, "contrastive": contrastive.detach(),
                "mlm": None if mlm is None else mlm.detach(),
                "grounding": None if grounding is None else grounding.detach()}

    def param_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Trainable named parameters by learning-rate group: motion encoder, text encoder, heads."""
        groups = {"motion": [], "text": [], "heads": []}
        for name, param in self.named_parameters():
            if not param.requires_grad:   # frozen text layers
                continue
            key = "motion" if name.startswith("motion.") else "text" if name.startswith("text.") else "heads"
            groups[key].append((name, param))
        return groups


def padding_patch_mask(angles: torch.Tensor) -> torch.Tensor:
    """(B, 224, 29) normalised JAMI input -> (B, 196) bool: False for the patches of the time
    windows after the clip's last frame (crop_or_pad pads with exact zeros after normalising),
    the windows a clip fills counted by jami.windows_of_frames.

    A zero patch vector has cosine 0 with every token, so MaxSim's max skips it as long as some
    real patch scores above 0, and the global mean of the patches becomes the mean of the real
    ones once normalised: short clips are no longer scored against 11 s of padding.
    """
    nonzero = angles.abs().amax(dim=2) > 0                                          # (B, frames)
    positions = torch.arange(1, angles.shape[1] + 1, device=angles.device)
    frames = (nonzero * positions).amax(dim=1)                                      # last real frame + 1
    windows = torch.as_tensor(PATCH_WINDOWS, device=angles.device)
    return windows[None, :] < windows_of_frames(frames)[:, None]
