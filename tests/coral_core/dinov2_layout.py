"""Meta's official DINOv2 checkpoint layout, written out independently of timm, for tests.

Key names and shapes follow facebookresearch/dinov2 (``DinoVisionTransformer`` built by
``hubconf.py`` with img_size 518, patch 14, layer scale, ``block_chunks=0``): the tensors a
``dinov2_vit*14[_reg4]_pretrain.pth`` file holds. Values are random; only the layout matters.
"""

from __future__ import annotations

import torch

# arch: (embed_dim, depth, mlp hidden, swiglu)
OFFICIAL_ARCHS = {
    "vits14": (384, 12, 1536, False),
    "vitb14": (768, 12, 3072, False),
    "vitl14": (1024, 24, 4096, False),
    "vitg14": (1536, 40, 4096, True),  # SwiGLU: w12 packs two 4096-wide projections
}
NUM_PATCHES = (518 // 14) ** 2  # 1369


def official_shapes(arch: str, registers: bool = False) -> dict[str, tuple[int, ...]]:
    dim, depth, hidden, swiglu = OFFICIAL_ARCHS[arch]
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, NUM_PATCHES + 1, dim),
        "mask_token": (1, dim),
        "patch_embed.proj.weight": (dim, 3, 14, 14),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    if registers:
        shapes["register_tokens"] = (1, 4, dim)
    for i in range(depth):
        block = f"blocks.{i}."
        shapes.update(
            {
                block + "norm1.weight": (dim,),
                block + "norm1.bias": (dim,),
                block + "attn.qkv.weight": (3 * dim, dim),
                block + "attn.qkv.bias": (3 * dim,),
                block + "attn.proj.weight": (dim, dim),
                block + "attn.proj.bias": (dim,),
                block + "ls1.gamma": (dim,),
                block + "norm2.weight": (dim,),
                block + "norm2.bias": (dim,),
                block + "ls2.gamma": (dim,),
            }
        )
        if swiglu:
            shapes[block + "mlp.w12.weight"] = (2 * hidden, dim)
            shapes[block + "mlp.w12.bias"] = (2 * hidden,)
            shapes[block + "mlp.w3.weight"] = (dim, hidden)
            shapes[block + "mlp.w3.bias"] = (dim,)
        else:
            shapes[block + "mlp.fc1.weight"] = (hidden, dim)
            shapes[block + "mlp.fc1.bias"] = (hidden,)
            shapes[block + "mlp.fc2.weight"] = (dim, hidden)
            shapes[block + "mlp.fc2.bias"] = (dim,)
    return shapes


def official_state_dict(
    arch: str, registers: bool = False, device: str = "cpu", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random tensors in the official names and shapes (``device="meta"``: no memory)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes(arch, registers).items():
        if device == "meta":
            state[key] = torch.empty(shape, device="meta")
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.02
    return state
