"""Segment Anything and CoralSCoP: strict checkpoint loading and batched prompting.

Two families of checkpoints load here, each strictly (a missing or unexpected key, or a
tensor of the wrong shape, is an error naming the first offending keys, never a random layer):

* Meta's segment-anything files ``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``,
  ``sam_vit_h_4b8939.pth``: the architectures of ``segment_anything.sam_model_registry``;
* CoralSCoP's ``vit_b_coralscop.pth`` (Zheng et al., CVPR 2024): SAM with a mask decoder
  that carries a parallel semantic branch predicting coral / non-coral for every mask
  (:class:`CoralScopMaskDecoder`).

The variant and the encoder size are read from the file itself: the width of
``image_encoder.pos_embed`` gives the size (768 ViT-B, 1024 ViT-L, 1280 ViT-H) and the
decoder's ``cate_*`` keys mark CoralSCoP. Either can be forced by the caller.

:class:`SamRunner` runs the image encoder once per image and then decodes many prompts
(one point or one box each) in batches, returning masks at the image's resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry
from segment_anything.modeling import MaskDecoder, Sam
from segment_anything.modeling.mask_decoder import MLP
from torch import nn

from coral_core.checkpoint import load_checkpoint_file
from coral_core.errors import CoralsegError
from coral_core.inference.cpu_math import flush_subnormals
from coral_core.inference.sam_upscaling import upscaled_window

VARIANTS = ("sam", "coralscop")
# Encoder width of each size, as in segment_anything's build_sam.py.
SIZES: dict[str, int] = {"vit_b": 768, "vit_l": 1024, "vit_h": 1280}
# CoralSCoP's category classes: its mask generator keeps the masks whose argmax is > 0.
CATEGORY_NAMES = ("non_coral", "coral")
CORAL_CATEGORY = 1

# SAM prompts decoded together by default (see SamRunner).
CPU_PROMPTS_PER_BATCH = 2
GPU_PROMPTS_PER_BATCH = 16

_POS_EMBED_KEY = "image_encoder.pos_embed"
_CATEGORY_KEY_PREFIX = "mask_decoder.cate_"
_KEYS_NAMED = 5  # how many offending keys an error message lists


@dataclass(frozen=True)
class SamSpec:
    """What :func:`load_sam` loaded.

    Attributes:
        variant: ``"sam"`` (segment-anything) or ``"coralscop"``.
        size: encoder size, ``"vit_b"``, ``"vit_l"`` or ``"vit_h"``.
        has_category_head: the decoder predicts coral / non-coral per mask (CoralSCoP).
        checkpoint: the file the weights came from.
    """

    variant: str
    size: str
    has_category_head: bool
    checkpoint: Path


class CoralScopMaskDecoder(MaskDecoder):
    """SAM's mask decoder with CoralSCoP's parallel semantic (category) branch.

    The modules and parameter names are CoralSCoP's, so its checkpoint loads strictly:

    * ``cate_output_hypernetworks_mlps``: one MLP per mask token (``transformer_dim`` ->
      ``transformer_dim`` -> ``transformer_dim // 8``), beside SAM's
      ``output_hypernetworks_mlps``;
    * ``cate_feature_projection_head``: MLP projecting each of the image tokens leaving the
      two-way transformer to ``transformer_dim // 8`` channels;
    * ``cate_prediction_head``: MLP from the ``image_tokens`` (64 x 64 = 4096 for a 1024 px
      input) similarities between a mask token and the projected image tokens to
      ``num_categories`` logits (hidden width ``iou_head_hidden_dim``).

    ``forward`` keeps :class:`MaskDecoder`'s contract (masks, IoU predictions), so
    ``SamPredictor`` and ``SamAutomaticMaskGenerator`` work unchanged;
    :meth:`forward_with_category` also returns the category logits.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        num_categories: int = len(CATEGORY_NAMES),
        image_tokens: int = 64 * 64,
    ) -> None:
        super().__init__(
            transformer_dim=transformer_dim,
            transformer=transformer,
            num_multimask_outputs=num_multimask_outputs,
            activation=activation,
            iou_head_depth=iou_head_depth,
            iou_head_hidden_dim=iou_head_hidden_dim,
        )
        self.num_categories = num_categories
        token_dim = transformer_dim // 8
        self.cate_output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, token_dim, 3) for _ in range(self.num_mask_tokens)
        )
        self.cate_feature_projection_head = MLP(
            transformer_dim, iou_head_hidden_dim, token_dim, iou_head_depth
        )
        self.cate_prediction_head = MLP(
            image_tokens, iou_head_hidden_dim, num_categories, iou_head_depth
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks and IoU predictions, as :meth:`MaskDecoder.forward` returns them."""
        masks, iou_pred, _ = self.forward_with_category(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            multimask_output,
        )
        return masks, iou_pred

    def forward_with_category(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masks, IoU predictions and category logits for a batch of B prompts.

        Returns:
            ``(B, M, 256, 256)`` low-resolution mask logits, ``(B, M)`` predicted IoUs and
            ``(B, M, num_categories)`` category logits (index :data:`CORAL_CATEGORY` is
            coral), with M = 3 when ``multimask_output`` else 1, as in SAM.
        """
        masks, iou_pred, category = self.predict_masks_and_categories(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        selected = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, selected], iou_pred[:, selected], category[:, selected]

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All ``num_mask_tokens`` masks and IoUs, as :meth:`MaskDecoder.predict_masks`."""
        masks, iou_pred, _ = self.predict_masks_and_categories(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        return masks, iou_pred

    def predict_masks_and_categories(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All ``num_mask_tokens`` outputs (masks, IoUs, category logits) of each prompt."""
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat(
            [output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1
        )
        # One copy of the image embedding per prompt, as in SAM.
        image = torch.repeat_interleave(image_embeddings, batch, dim=0) + dense_prompt_embeddings
        image_pos = torch.repeat_interleave(image_pe, batch, dim=0)
        _, channels, height, width = image.shape

        token_out, image_out = self.transformer(image, image_pos, tokens)
        iou_token = token_out[:, 0]
        mask_tokens = token_out[:, 1 : 1 + self.num_mask_tokens]

        upscaled = self.output_upscaling(
            image_out.transpose(1, 2).reshape(batch, channels, height, width)
        )
        mask_weights = torch.stack(
            [mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1
        )
        masks = torch.einsum("bmc,bchw->bmhw", mask_weights, upscaled)
        iou_pred = self.iou_prediction_head(iou_token)

        # The semantic branch: each mask token, through its own MLP, is matched against every
        # projected image token; the head reads that (image_tokens)-long similarity profile.
        category_weights = torch.stack(
            [mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.cate_output_hypernetworks_mlps)],
            1,
        )
        projected = self.cate_feature_projection_head(image_out)  # (B, image_tokens, C/8)
        similarity = torch.einsum("bmc,bnc->bmn", category_weights, projected)
        category = self.cate_prediction_head(similarity)
        return masks, iou_pred, category


def build_sam_model(variant: str, size: str) -> Sam:
    """A SAM or CoralSCoP model with random weights, in eval mode.

    Built on torch's current default device, so ``with torch.device("meta"):`` builds one
    without allocating its weights (load them with ``assign=True``).
    """
    if variant not in VARIANTS:
        raise CoralsegError(f"unknown SAM variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if size not in SIZES:
        raise CoralsegError(f"unknown SAM size {size!r}; use one of {', '.join(SIZES)}")
    model = sam_model_registry[size]()
    if variant == "coralscop":
        sam_decoder = model.mask_decoder
        iou_head = sam_decoder.iou_prediction_head
        model.mask_decoder = CoralScopMaskDecoder(
            transformer_dim=sam_decoder.transformer_dim,
            transformer=sam_decoder.transformer,
            num_multimask_outputs=sam_decoder.num_multimask_outputs,
            iou_head_depth=iou_head.num_layers,
            iou_head_hidden_dim=iou_head.layers[0].out_features,
            image_tokens=int(np.prod(model.prompt_encoder.image_embedding_size)),
        )
    return model.eval()


def read_sam_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a SAM or CoralSCoP checkpoint (read with ``weights_only=True``).

    Official files are plain state dicts; a ``{"model": ...}`` or ``{"state_dict": ...}``
    wrapper written by training code is unwrapped.
    """
    state = load_checkpoint_file(path)
    if not any(key.startswith("image_encoder.") for key in state):
        for wrapper in ("model", "state_dict"):
            if isinstance(state.get(wrapper), dict):
                return state[wrapper]
    return state


def detect_sam_layout(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    """``(variant, size)`` of a checkpoint, read from its keys and shapes.

    Raises:
        CoralsegError: the file is not in a SAM or CoralSCoP layout.
    """
    return _detect_variant(state_dict), _detect_size(state_dict)


def _detect_variant(state_dict: Mapping[str, torch.Tensor]) -> str:
    if any(key.startswith(_CATEGORY_KEY_PREFIX) for key in state_dict):
        return "coralscop"
    return "sam"


def _detect_size(state_dict: Mapping[str, torch.Tensor]) -> str:
    pos_embed = state_dict.get(_POS_EMBED_KEY)
    if pos_embed is None:
        first = ", ".join(list(state_dict)[:3]) or "none"
        hint = (
            " (this looks like a SAM 2 checkpoint, which is not supported)"
            if any(key.startswith("image_encoder.trunk.") for key in state_dict)
            else ""
        )
        raise CoralsegError(
            f"the checkpoint is not a Segment Anything or CoralSCoP model: it has no "
            f"{_POS_EMBED_KEY!r} (its first keys are {first}){hint}; use Meta's "
            "sam_vit_{b,l,h}_*.pth or CoralSCoP's vit_b_coralscop.pth"
        )
    width = pos_embed.shape[-1]
    for size, size_width in SIZES.items():
        if width == size_width:
            return size
    raise CoralsegError(
        f"the checkpoint's image encoder is {width} channels wide, which is none of SAM's "
        f"sizes ({', '.join(f'{s}: {w}' for s, w in SIZES.items())}); it is not a "
        "segment-anything or CoralSCoP checkpoint"
    )


def load_sam_state_dict(
    model: Sam,
    state_dict: Mapping[str, torch.Tensor],
    description: str = "this SAM model",
    assign: bool = False,
) -> None:
    """Load weights strictly, naming the first missing, unexpected or misshapen keys.

    Raises:
        CoralsegError: the keys or shapes of ``state_dict`` differ from ``model``'s.
    """
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    problems = []
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    found = {
        key: tuple(getattr(state_dict[key], "shape", ())) for key in expected if key in state_dict
    }
    misshapen = [
        f"{key} {found[key]} instead of {shape}"
        for key, shape in expected.items()
        if key in found and found[key] != shape
    ]
    for name, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", misshapen),
    ):
        if keys:
            more = f" and {len(keys) - _KEYS_NAMED} more" if len(keys) > _KEYS_NAMED else ""
            problems.append(f"{name}: {', '.join(keys[:_KEYS_NAMED])}{more}")
    if problems:
        raise CoralsegError(
            f"the checkpoint does not match {description}: {'; '.join(problems)}. Check that "
            "the file is a complete SAM or CoralSCoP checkpoint and that variant/size, if "
            "given, are those of the file"
        )
    model.load_state_dict(dict(state_dict), strict=True, assign=assign)


def load_sam(
    checkpoint: str | Path,
    device: str | torch.device = "cpu",
    variant: str | None = None,
    size: str | None = None,
) -> tuple[Sam, SamSpec]:
    """Load a SAM or CoralSCoP checkpoint strictly, in eval mode on ``device``.

    Args:
        checkpoint: ``sam_vit_{b,l,h}_*.pth`` or ``vit_b_coralscop.pth``.
        device: where the model runs.
        variant: ``"sam"`` or ``"coralscop"``; None detects it from the file's keys.
        size: ``"vit_b"``, ``"vit_l"`` or ``"vit_h"``; None detects it from the encoder width.

    Raises:
        CoralsegError: unreadable file, unknown layout, or weights that do not match the
            (detected or forced) architecture.
    """
    flush_subnormals(device)  # first: torch's worker threads take it when they start
    path = Path(checkpoint).expanduser()
    state = read_sam_checkpoint(path)
    # Official weights are float32; a half-precision copy is brought back for CPU inference.
    state = {
        key: value.float()
        if isinstance(value, torch.Tensor) and value.is_floating_point()
        else value
        for key, value in state.items()
    }
    variant = variant or _detect_variant(state)
    size = size or _detect_size(state)
    # Built without memory and given the file's tensors: no random initialisation of
    # ViT-H's 630M parameters only to overwrite them. Sam's only tensors outside the state
    # dict (pixel mean and std) come from torch.Tensor(list), which ignores the meta device
    # context, so they are real; the tests check that nothing stays on the meta device.
    with torch.device("meta"):
        model = build_sam_model(variant, size)
    label = "CoralSCoP" if variant == "coralscop" else "Segment Anything"
    load_sam_state_dict(model, state, f"{label} {size} ({path.name})", assign=True)
    model.to(device).eval()
    spec = SamSpec(
        variant=variant,
        size=size,
        has_category_head=isinstance(model.mask_decoder, CoralScopMaskDecoder),
        checkpoint=path,
    )
    return model, spec


def load_sam_runner(
    checkpoint: str | Path, device: str | torch.device = "cpu", prompts_per_batch: int | None = None
) -> SamRunner:
    """The SAM or CoralSCoP model inference uses: ``checkpoint`` loaded by :func:`load_sam`
    (layout detected) behind a :class:`SamRunner`. Every adapter loads SAM through this.

    Raises:
        CoralsegError: as :func:`load_sam`, or ``prompts_per_batch`` below 1.
    """
    model, _ = load_sam(checkpoint, device=device)
    return SamRunner(model, prompts_per_batch=prompts_per_batch)


class PromptMasks(NamedTuple):
    """One mask per prompt, at the resolution of the image given to ``set_image``.

    Attributes:
        masks: ``(N, H, W)`` bool, True inside the object; or, when crops were asked for,
            a list of N ``(h, w)`` bool arrays, each mask inside its crop window.
        iou_scores: ``(N,)`` float32, the model's predicted IoU of each mask.
        coral_scores: ``(N,)`` float32 in [0, 1], CoralSCoP's probability that the mask is a
            coral (> 0.5 is the class CoralSCoP's own mask generator keeps); None for SAM.
    """

    masks: np.ndarray | list[np.ndarray]
    iou_scores: np.ndarray
    coral_scores: np.ndarray | None


class SamRunner:
    """Prompted mask prediction with a loaded SAM or CoralSCoP model.

    ``set_image`` runs the image encoder once (segment_anything's ``SamPredictor``: resize
    the long side to 1024, normalise, pad); ``predict_points`` and ``predict_boxes`` then
    decode any number of prompts, ``prompts_per_batch`` at a time, each prompt giving one
    mask. Coordinates are pixels of the image passed to ``set_image``.

    Args:
        model: from :func:`load_sam`.
        prompts_per_batch: prompts decoded together; None: 2 on a CPU, where the decoder's
            two-way transformer over the 64 x 64 image embedding is fastest per prompt in
            small batches (98 ms at 1 or 2, 150 ms at 8, 167 ms at 16 for ViT-B on 2 cores),
            16 on a GPU. Masks are upscaled from the decoder's 256 x 256 logits inside their
            crop windows only (``sam_upscaling``), so memory follows the windows; without
            crops each prompt holds an ``(H, W)`` mask.
        multimask: predict SAM's three candidate masks per prompt and keep the one with the
            highest predicted IoU; False (CoralSCoP's setting) predicts a single mask.
    """

    def __init__(
        self, model: Sam, prompts_per_batch: int | None = None, multimask: bool = False
    ) -> None:
        if prompts_per_batch is None:
            on_cpu = next(model.parameters()).device.type == "cpu"
            prompts_per_batch = CPU_PROMPTS_PER_BATCH if on_cpu else GPU_PROMPTS_PER_BATCH
        if prompts_per_batch < 1:
            raise CoralsegError(f"prompts_per_batch must be at least 1, not {prompts_per_batch}")
        self.model = model
        self.predictor = SamPredictor(model)
        self.prompts_per_batch = prompts_per_batch
        self.multimask = multimask

    @property
    def has_category_head(self) -> bool:
        return isinstance(self.model.mask_decoder, CoralScopMaskDecoder)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the current image."""
        self._require_image()
        return tuple(self.predictor.original_size)

    def set_image(self, image: np.ndarray) -> None:
        """Encode an ``(H, W, 3)`` uint8 RGB image for the following predictions."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise CoralsegError(
                f"SAM expects an (H, W, 3) uint8 RGB image, not {image.dtype} of shape "
                f"{image.shape}"
            )
        self.predictor.set_image(image, image_format="RGB")

    def reset_image(self) -> None:
        """Forget the current image and its embedding (frees its memory)."""
        self.predictor.reset_image()

    def predict_points(self, points: np.ndarray, labels: np.ndarray | None = None) -> PromptMasks:
        """One mask per point prompt.

        Args:
            points: ``(N, 2)`` float ``(x, y)`` = (column, row) pixel coordinates.
            labels: ``(N,)`` int, 1 for a point on the object, 0 for a point off it;
                None means all 1.
        """
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise CoralsegError(f"points must be an (N, 2) array of x, y, not {points.shape}")
        if labels is None:
            labels = np.ones(len(points), dtype=np.int64)
        labels = np.asarray(labels)
        if labels.shape != (len(points),):
            raise CoralsegError(
                f"labels must have one value per point, shape ({len(points)},), not {labels.shape}"
            )
        self._require_image()
        coords = self.predictor.transform.apply_coords(points, self.predictor.original_size)
        coords_t = torch.as_tensor(coords, dtype=torch.float, device=self.model.device)
        labels_t = torch.as_tensor(labels, dtype=torch.int, device=self.model.device)
        return self._predict_batches(
            len(points),
            lambda chunk: {"points": (coords_t[chunk, None, :], labels_t[chunk, None])},
        )

    def predict_boxes(
        self, boxes: np.ndarray, crops: Sequence[tuple[int, int, int, int]] | None = None
    ) -> PromptMasks:
        """One mask per box prompt.

        Args:
            boxes: ``(N, 4)`` float ``(x0, y0, x1, y1)`` pixel coordinates (XYXY).
            crops: N integer windows ``(x0, y0, x1, y1)`` (ends exclusive): return each mask
                inside its window only, so memory is that of the windows, not N images.
        """
        if crops is not None and len(crops) != len(boxes):
            raise CoralsegError(f"{len(boxes)} boxes but {len(crops)} crop windows")
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise CoralsegError(
                f"boxes must be an (N, 4) array of x0, y0, x1, y1, not {boxes.shape}"
            )
        self._require_image()
        height, width = self.predictor.original_size
        for x0, y0, x1, y1 in crops or ():
            if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height):
                raise CoralsegError(
                    f"crop window {(x0, y0, x1, y1)} is not inside the {width} x {height} image"
                )
        boxes_t = torch.as_tensor(
            self.predictor.transform.apply_boxes(boxes, self.predictor.original_size),
            dtype=torch.float,
            device=self.model.device,
        )
        return self._predict_batches(len(boxes), lambda chunk: {"boxes": boxes_t[chunk]}, crops)

    def _require_image(self) -> None:
        if not self.predictor.is_image_set:
            raise RuntimeError("call SamRunner.set_image before predicting masks")

    def _predict_batches(
        self,
        count: int,
        prompts_of: Callable[[slice], dict[str, object]],
        crops: Sequence[tuple[int, int, int, int]] | None = None,
    ) -> PromptMasks:
        height, width = self.predictor.original_size
        masks: np.ndarray | list[np.ndarray]
        masks = [] if crops is not None else np.zeros((count, height, width), dtype=bool)
        iou_scores = np.zeros(count, dtype=np.float32)
        coral_scores = np.zeros(count, dtype=np.float32) if self.has_category_head else None
        for start in range(0, count, self.prompts_per_batch):
            chunk = slice(start, min(start + self.prompts_per_batch, count))
            low_res, batch_iou, batch_coral = self._decode(**prompts_of(chunk))
            if crops is None:
                masks[chunk] = self._upscaled(low_res, (0, 0, width, height)).cpu().numpy()
            else:
                for logits, window in zip(low_res, crops[chunk], strict=True):
                    masks.append(self._upscaled(logits, window).cpu().numpy())
            iou_scores[chunk] = batch_iou.cpu().numpy()
            if coral_scores is not None:
                coral_scores[chunk] = batch_coral.cpu().numpy()
        return PromptMasks(masks, iou_scores, coral_scores)

    @torch.inference_mode()
    def _upscaled(self, low_res: torch.Tensor, window: tuple[int, int, int, int]) -> torch.Tensor:
        """``(..., h, w)`` bool masks of the window from ``(..., 256, 256)`` decoder logits."""
        logits = upscaled_window(
            low_res,
            self.model.image_encoder.img_size,
            self.predictor.input_size,
            self.predictor.original_size,
            window,
        )
        return logits > self.model.mask_threshold

    @torch.inference_mode()
    def _decode(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Low-resolution mask logits ``(B, 256, 256)`` float, IoUs ``(B,)`` and coral
        probabilities ``(B,)`` or None."""
        model = self.model
        sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=None)
        decoder_inputs = {
            "image_embeddings": self.predictor.features,
            "image_pe": model.prompt_encoder.get_dense_pe(),
            "sparse_prompt_embeddings": sparse,
            "dense_prompt_embeddings": dense,
            "multimask_output": self.multimask,
        }
        category = None
        if self.has_category_head:
            low_res, iou, category = model.mask_decoder.forward_with_category(**decoder_inputs)
        else:
            low_res, iou = model.mask_decoder(**decoder_inputs)
        best = iou.argmax(dim=1)  # the only candidate unless multimask
        rows = torch.arange(len(best), device=best.device)
        low_res, iou = low_res[rows, best], iou[rows, best]
        coral = None
        if category is not None:
            coral = category[rows, best].softmax(dim=-1)[:, CORAL_CATEGORY]
        return low_res, iou, coral
