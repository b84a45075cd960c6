from __future__ import annotations

from pathlib import Path

import pytest
import torch
from timm.models.vision_transformer import checkpoint_filter_fn

from coral_core.errors import CoralsegError
from coral_core.models.dinov2 import (
    ARCHS,
    DINOv2ViT,
    build_timm_dinov2,
    load_official_checkpoint,
    official_checkpoint_name,
)
from tests.coral_core.dinov2_layout import official_state_dict


def _save(tmp_path: Path, arch: str, registers: bool) -> tuple[Path, dict[str, torch.Tensor]]:
    state = official_state_dict(arch, registers)
    path = tmp_path / official_checkpoint_name(arch, registers)
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("registers", [False, True], ids=["plain", "reg4"])
@pytest.mark.parametrize("arch", ["vits14", "vitb14"])
def test_official_checkpoint_loads_strictly_and_runs(
    tmp_path: Path, arch: str, registers: bool
) -> None:
    path, state = _save(tmp_path, arch, registers)
    backbone = DINOv2ViT(arch=arch, registers=registers, checkpoint=str(path))
    loaded = backbone.vit.state_dict()
    torch.testing.assert_close(
        loaded["blocks.3.attn.qkv.weight"], state["blocks.3.attn.qkv.weight"]
    )
    torch.testing.assert_close(loaded["patch_embed.proj.weight"], state["patch_embed.proj.weight"])
    features = backbone(torch.randn(1, 3, 98, 126))
    assert [f.shape for f in features] == [(1, ARCHS[arch].embed_dim, 7, 9)] * 4


@pytest.mark.parametrize("registers", [False, True], ids=["plain", "reg4"])
@pytest.mark.parametrize("arch", ["vitl14", "vitg14"])
def test_large_and_giant_layouts_match_on_the_meta_device(arch: str, registers: bool) -> None:
    with torch.device("meta"):
        model = build_timm_dinov2(arch, registers)
    state = official_state_dict(arch, registers, device="meta")
    load_official_checkpoint(model, state, assign=True)
    # what a strict load guarantees: every tensor of the model came from the file, none of
    # the file's was left over (but mask_token, which only masked pretraining uses), shapes
    # equal
    loaded = model.state_dict()
    expected = checkpoint_filter_fn(dict(state), model)
    assert loaded.keys() == expected.keys() and len(loaded) == len(state) - 1
    assert {k: v.shape for k, v in loaded.items()} == {k: v.shape for k, v in expected.items()}
    assert ("reg_token" in loaded) == registers


def test_a_checkpoint_of_another_size_is_a_clear_error(tmp_path: Path) -> None:
    path, _ = _save(tmp_path, "vits14", False)
    with pytest.raises(CoralsegError, match="does not match this DINOv2 backbone"):
        DINOv2ViT(arch="vitb14", checkpoint=str(path))


def test_a_missing_key_is_an_error_not_a_random_layer(tmp_path: Path) -> None:
    state = official_state_dict("vits14")
    del state["blocks.5.ls2.gamma"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CoralsegError, match=r"blocks\.5\.ls2\.gamma"):
        DINOv2ViT(arch="vits14", checkpoint=str(path))


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(CoralsegError, match="does not exist"):
        DINOv2ViT(arch="vits14", checkpoint=str(tmp_path / "dinov2_vits14_pretrain.pth"))


def test_frozen_backbone_has_no_trainable_parameters_and_stores_no_graph() -> None:
    backbone = DINOv2ViT(arch="vits14", frozen=True)
    backbone.train()
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not backbone.vit.training  # dropout and drop-path stay off
    features = backbone(torch.randn(1, 3, 56, 56))
    assert all(f.grad_fn is None for f in features)


def test_fine_tuned_backbone_with_gradient_checkpointing_gets_gradients() -> None:
    backbone = DINOv2ViT(arch="vits14", frozen=False, grad_checkpointing=True, drop_path_rate=0.1)
    backbone.train()
    features = backbone(torch.randn(2, 3, 56, 56))
    sum(f.mean() for f in features).backward()
    grads = [p.grad for p in backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[:5])


def test_out_indices_and_their_validation() -> None:
    assert DINOv2ViT(arch="vitb14").out_indices == (8, 9, 10, 11)
    assert DINOv2ViT(arch="vits14", out_indices=(2, 5)).out_indices == (2, 5)
    with pytest.raises(CoralsegError, match=r"out_indices \[12\]"):
        DINOv2ViT(arch="vits14", out_indices=(3, 12))
    with pytest.raises(CoralsegError, match="gradient checkpointing only applies"):
        DINOv2ViT(arch="vits14", frozen=True, grad_checkpointing=True)
    with pytest.raises(CoralsegError, match="unknown DINOv2 architecture 'vitx14'"):
        DINOv2ViT(arch="vitx14")


def test_features_come_from_the_requested_blocks() -> None:
    backbone = DINOv2ViT(arch="vits14", out_indices=(0, 11))
    x = torch.randn(1, 3, 28, 28)
    first, last = backbone(x)
    vit = backbone.vit
    with torch.no_grad():
        tokens = vit.patch_drop(vit.norm_pre(vit._pos_embed(vit.patch_embed(x))))
        outputs = []
        for block in vit.blocks:
            tokens = block(tokens)
            outputs.append(vit.norm(tokens)[:, vit.num_prefix_tokens :])
    expected_first = outputs[0].transpose(1, 2).reshape(1, 384, 2, 2)
    torch.testing.assert_close(first, expected_first)
    torch.testing.assert_close(last, outputs[11].transpose(1, 2).reshape(1, 384, 2, 2))
