"""DINOv2 ViT backbone for MMSegmentation, on timm's implementation, loading Meta's checkpoints.

Meta's official files (``dinov2_vit{s,b,l,g}14_pretrain.pth`` and ``..._reg4_pretrain.pth``)
load strictly: :func:`load_official_checkpoint` converts their key layout with timm's own
``checkpoint_filter_fn`` (the only key dropped is ``mask_token``, used by DINOv2's masked
pre-training and by nothing downstream) and then calls ``load_state_dict(strict=True)``, so a
missing or unexpected key is an error, never a silently random layer.

The backbone returns the patch features of four blocks (the last four by default, e.g. 8-11
for ViT-B) after the final LayerNorm, as ``(B, C, H/14, W/14)`` maps, for any input size:
position embeddings are interpolated and inputs whose sides are not multiples of 14 are
padded. Frozen, it runs in eval mode under ``torch.no_grad()`` (no activations stored);
fine-tuned, it can use gradient checkpointing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from timm.models.vision_transformer import checkpoint_filter_fn
from torch import nn

from coral_core.checkpoint import load_checkpoint_file
from coral_core.errors import CoralsegError

PATCH_SIZE = 14
PRETRAIN_SIZE = 518  # Meta's checkpoints hold position embeddings for 518 px (37x37 patches)


@dataclass(frozen=True)
class DinoV2Arch:
    """One DINOv2 size: its timm model and its shape."""

    timm_name: str
    embed_dim: int
    depth: int
    num_heads: int

    @property
    def last_four(self) -> tuple[int, ...]:
        return tuple(range(self.depth - 4, self.depth))


ARCHS: dict[str, DinoV2Arch] = {
    "vits14": DinoV2Arch("vit_small_patch14_dinov2", 384, 12, 6),
    "vitb14": DinoV2Arch("vit_base_patch14_dinov2", 768, 12, 12),
    "vitl14": DinoV2Arch("vit_large_patch14_dinov2", 1024, 24, 16),
    "vitg14": DinoV2Arch("vit_giant_patch14_dinov2", 1536, 40, 24),
}


def official_checkpoint_name(arch: str, registers: bool = False) -> str:
    """File name of Meta's checkpoint for an architecture, e.g. ``dinov2_vitb14_pretrain.pth``."""
    return f"dinov2_{arch}{'_reg4' if registers else ''}_pretrain.pth"


def build_timm_dinov2(arch: str, registers: bool = False, drop_path_rate: float = 0.0) -> nn.Module:
    """The timm VisionTransformer of a DINOv2 size, with random weights and no head.

    ``dynamic_img_size`` interpolates the position embeddings to any input size and
    ``dynamic_img_pad`` pads inputs to a multiple of the patch size.
    """
    if arch not in ARCHS:
        raise CoralsegError(f"unknown DINOv2 architecture {arch!r}; use one of {', '.join(ARCHS)}")
    name = ARCHS[arch].timm_name
    if registers:
        name = name.replace("_dinov2", "_reg4_dinov2")
    return timm.create_model(
        name,
        pretrained=False,
        num_classes=0,
        img_size=PRETRAIN_SIZE,
        dynamic_img_size=True,
        dynamic_img_pad=True,
        drop_path_rate=drop_path_rate,
    )


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a backbone checkpoint file (read with ``weights_only=True``)."""
    state = load_checkpoint_file(path)
    for wrapper in ("model", "state_dict", "teacher"):
        if wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    return state


def load_official_checkpoint(
    model: nn.Module, state_dict: dict[str, torch.Tensor], assign: bool = False
) -> None:
    """Load Meta's DINOv2 weights (official key layout) into a timm DINOv2 model, strictly.

    Raises:
        CoralsegError: keys missing or unexpected, or shapes that do not match (e.g. a ViT-L
            file for a ViT-B config), with the first offending keys named.
    """
    # timm's filter recognises Meta's layout by its mask_token (and drops it); a file without
    # one was saved from a timm model and is in timm's layout already.
    if "mask_token" in state_dict:
        converted = checkpoint_filter_fn(dict(state_dict), model)
    else:
        converted = state_dict
    try:
        model.load_state_dict(converted, strict=True, assign=assign)
    except RuntimeError as err:
        first_lines = "; ".join(str(err).splitlines()[:4])
        raise CoralsegError(
            f"the checkpoint does not match this DINOv2 backbone: {first_lines}"
        ) from None


@MODELS.register_module()
class DINOv2ViT(BaseModule):
    """DINOv2 ViT backbone returning four feature maps.

    Args:
        arch: ``vits14``, ``vitb14``, ``vitl14`` or ``vitg14``.
        registers: the variant with 4 register tokens (``..._reg4_pretrain.pth``).
        out_indices: blocks whose outputs are returned (default: the last four).
        checkpoint: path of Meta's ``.pth`` file; None keeps random weights (tests) or lets
            a full-model checkpoint provide them (``load_from`` / resume).
        frozen: no gradients, eval mode, no stored activations.
        grad_checkpointing: recompute activations in the backward pass (fine-tuning only).
        drop_path_rate: stochastic depth when fine-tuning.

    Input: ``(B, 3, H, W)`` float, normalised with ImageNet mean/std, any ``H, W``.
    Output: tuple of four ``(B, embed_dim, ceil(H/14), ceil(W/14))`` float tensors.
    """

    def __init__(
        self,
        arch: str = "vitb14",
        registers: bool = False,
        out_indices: Sequence[int] | None = None,
        checkpoint: str | None = None,
        frozen: bool = True,
        grad_checkpointing: bool = False,
        drop_path_rate: float = 0.0,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = arch
        self.vit = build_timm_dinov2(arch, registers, drop_path_rate)
        depth = ARCHS[arch].depth
        self.out_indices = tuple(out_indices) if out_indices is not None else ARCHS[arch].last_four
        bad = [i for i in self.out_indices if not 0 <= i < depth]
        if bad:
            raise CoralsegError(f"out_indices {bad} are outside 0..{depth - 1} for {arch}")
        if frozen and grad_checkpointing:
            raise CoralsegError("gradient checkpointing only applies to a fine-tuned backbone")
        self.frozen = frozen
        if checkpoint:
            load_official_checkpoint(self.vit, read_checkpoint(checkpoint))
        if grad_checkpointing:
            self.vit.set_grad_checkpointing(True)
        if frozen:
            self.vit.requires_grad_(False)
            self.vit.eval()

    @property
    def embed_dim(self) -> int:
        return ARCHS[self.arch].embed_dim

    def init_weights(self) -> None:
        # The ViT holds either Meta's weights or timm's initialisation; MMEngine's generic
        # initialisers must not overwrite either.
        pass

    def train(self, mode: bool = True) -> DINOv2ViT:
        super().train(mode)
        if self.frozen:
            self.vit.eval()  # also keeps dropout / drop-path off
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.frozen:
            with torch.no_grad():
                return tuple(self._features(x))
        return tuple(self._features(x))

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.vit.forward_intermediates(
            x,
            indices=list(self.out_indices),
            norm=True,
            output_fmt="NCHW",
            intermediates_only=True,
        )
