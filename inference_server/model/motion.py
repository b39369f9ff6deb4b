"""Motion side: normalised joint angles -> JAMI (joint-angle motion image) -> ViT patch tokens.

JAMI: rows are the 224 frames (20 fps), columns are 14 bands of 16 px, one per body part;
band p is a learned Linear(part_dof -> 16) of that part's angle channels. The grey image is
repeated to 3 channels and fed to a timm ViT with 16 px patches, so patch token
`window * 14 + part` (timm's row-major order) is "body part `part` during time window
`window`" (see jami.LAYOUT). The last block's patch tokens (prefix/CLS tokens dropped) are
the motion's 196 tokens.
"""
from __future__ import annotations

import torch
from torch import nn

from inference_server.errors import ModelError
from inference_server.jami import BAND, FRAMES

PATCH = 16   # ViT patch side: one patch = one body-part band x 16 frames


class MotionEncoder(nn.Module):
    def __init__(self, vit_name: str, part_channels: list[list[int]], vit_overrides: dict | None = None,
                 drop_path: float = 0.0, pretrained: bool | str = False, pretrained_tag: str | None = None):
        super().__init__()
        if len(part_channels) * BAND != FRAMES:
            raise ModelError(f"{len(part_channels)} body parts x {BAND} px do not make a {FRAMES} px wide JAMI")
        self.part_channels = [list(map(int, channels)) for channels in part_channels]
        self.bands = nn.ModuleList(nn.Linear(len(channels), BAND) for channels in self.part_channels)
        self.vit = _create_vit(vit_name, vit_overrides or {}, drop_path, pretrained, pretrained_tag)
        for p, channels in enumerate(self.part_channels):
            self.register_buffer(f"channels_{p}", torch.tensor(channels, dtype=torch.long), persistent=False)

    @property
    def width(self) -> int:
        return self.vit.embed_dim

    def jami(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, 224, 29) normalised angles -> (B, 1, 224, 224) grey image (rows = frames)."""
        bands = [band(angles.index_select(-1, getattr(self, f"channels_{p}")))
                 for p, band in enumerate(self.bands)]
        return torch.cat(bands, dim=-1).unsqueeze(1)

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, 224, 29) -> (B, 196, width) patch tokens in LAYOUT order."""
        if angles.dim() != 3 or angles.shape[1] != FRAMES:
            raise ModelError(f"motion input must be (B, {FRAMES}, channels), got {tuple(angles.shape)}")
        image = self.jami(angles).expand(-1, 3, -1, -1)
        tokens = self.vit.forward_features(image)
        return tokens[:, self.vit.num_prefix_tokens:]


def _create_vit(name: str, overrides: dict, drop_path: float, pretrained: bool | str, tag: str | None):
    """A timm ViT without classifier. `pretrained`: False, True (hub weights `name.tag`), or a local file."""
    import timm
    kwargs = dict(num_classes=0, img_size=FRAMES, patch_size=PATCH, drop_path_rate=drop_path, **overrides)
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    full_name = f"{name}.{tag}" if tag else name
    if isinstance(pretrained, str):
        kwargs["pretrained_cfg_overlay"] = {"file": pretrained}
    try:
        return timm.create_model(full_name, pretrained=True, **kwargs)
    except Exception as error:  # timm raises many types (HTTP, file, key mismatch)
        raise ModelError(f"could not load pretrained ViT weights {full_name!r}: {error}") from error
