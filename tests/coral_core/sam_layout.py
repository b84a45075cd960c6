"""Official SAM and CoralSCoP checkpoint layouts with random values, for tests.

Segment Anything's layout is that of ``segment_anything.sam_model_registry`` (the package
that defines the official files). CoralSCoP's extra decoder keys are written out here from
zhengziqiang/CoralSCOP ``segment_anything/modeling/mask_decoder.py`` (``cate_num=2``,
transformer_dim 256, 4 mask tokens, MLP depth 3, hidden width 256, 64 x 64 image tokens),
independently of ``coral_core.inference.sam_models``, so the tests check that module against them.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from segment_anything import sam_model_registry

_DIM = 256  # transformer_dim (prompt_embed_dim in build_sam.py)
_TOKEN_DIM = _DIM // 8
_MASK_TOKENS = 4  # num_multimask_outputs + 1
_HIDDEN = 256  # iou_head_hidden_dim
_IMAGE_TOKENS = 64 * 64  # the first Linear of cate_prediction_head takes 4096 inputs
_CATEGORIES = 2  # cate_num: non-coral, coral


def _mlp_shapes(prefix: str, dims: list[int]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for i, (n_in, n_out) in enumerate(pairwise(dims)):
        shapes[f"{prefix}.layers.{i}.weight"] = (n_out, n_in)
        shapes[f"{prefix}.layers.{i}.bias"] = (n_out,)
    return shapes


def coralscop_extra_shapes() -> dict[str, tuple[int, ...]]:
    """The keys ``vit_b_coralscop.pth`` holds beyond Meta's ``sam_vit_b`` layout."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(_MASK_TOKENS):
        shapes.update(
            _mlp_shapes(
                f"mask_decoder.cate_output_hypernetworks_mlps.{i}", [_DIM, _DIM, _DIM, _TOKEN_DIM]
            )
        )
    shapes.update(
        _mlp_shapes(
            "mask_decoder.cate_feature_projection_head", [_DIM, _HIDDEN, _HIDDEN, _TOKEN_DIM]
        )
    )
    shapes.update(
        _mlp_shapes(
            "mask_decoder.cate_prediction_head", [_IMAGE_TOKENS, _HIDDEN, _HIDDEN, _CATEGORIES]
        )
    )
    return shapes


def official_state_dict(
    size: str, coralscop: bool = False, device: str = "cpu", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random weights in the layout of ``sam_{size}`` (or CoralSCoP on that encoder).

    ``device="meta"`` gives the keys and shapes without allocating anything (ViT-L/H).
    """
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        state = dict(sam_model_registry[size]().state_dict())
    if coralscop:
        generator = torch.Generator().manual_seed(seed)
        for key, shape in coralscop_extra_shapes().items():
            if device == "meta":
                state[key] = torch.empty(shape, device="meta")
            else:
                state[key] = torch.randn(shape, generator=generator) * 0.02
    return state
