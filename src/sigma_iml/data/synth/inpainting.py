"""Inpainting pairs with exact masks from any folder of images, through a diffusers
inpainting pipeline: the SIGMA paper's Stage I recipe (it trains Stage I on BR-Gen's
inpainting part) for users without BR-Gen (``sigma-iml make-pairs --from-images DIR
--inpaint MODEL``; docs/training.md, "Stage I data").

Per item: an image of the folder (item ``i`` takes image ``i mod count``, names sorted),
a mask drawn at random — free-form brush strokes (the irregular masks inpainting models
are trained with) or an object-shaped region (an ellipse or a polygon) — and a prompt
from a small list. The pipeline repaints the masked region at its working resolution; its
output is resized back to the image's size and **composited**: every pixel outside the
mask is the original's, bit for bit, every pixel inside it the pipeline's. The mask
written is therefore exactly the region the pipeline was allowed to change. (A pixel
inside it may happen to keep its value; unlike the procedural generator's masks, these
are not "the pixels that changed" but "the pixels that were regenerated", which is what
BR-Gen's and CocoGlide's region masks are.) The instruction is the prompt as an edit:
``add <prompt>``; the parse (``null``, concept, ``add``) goes into the manifest.

Everything is drawn from ``numpy.random.SeedSequence([seed, index])`` and a seeded
torch generator, so a run is repeatable on the same device and model.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ...config import ConfigModel
from ...errors import ConfigError, DataError
from ..images import load_image
from ..io import atomic_write_bytes, atomic_write_text, encode_png, is_hidden

#: The mask shapes: free-form strokes and two object shapes.
MASK_SHAPES: tuple[str, ...] = ("strokes", "ellipse", "polygon")

#: ``(prompt, concept)``: the prompt the pipeline gets and the concept the instruction
#: names. Objects for the object-shaped masks, stuff for the strokes (BR-Gen's point: edits
#: of stuff and background regions, not only of objects).
OBJECT_PROMPTS: tuple[tuple[str, str], ...] = (
    ("a red car", "red car"),
    ("a small dog", "dog"),
    ("a potted plant", "potted plant"),
    ("a wooden chair", "wooden chair"),
    ("a bicycle", "bicycle"),
    ("a cat", "cat"),
    ("a vase of flowers", "vase of flowers"),
    ("a street lamp", "street lamp"),
)
STUFF_PROMPTS: tuple[tuple[str, str], ...] = (
    ("green grass", "grass"),
    ("blue sky with clouds", "sky"),
    ("calm water", "water"),
    ("sand", "sand"),
    ("a brick wall", "brick wall"),
    ("snow", "snow"),
    ("gravel", "gravel"),
    ("autumn leaves", "leaves"),
)

#: The fraction of the image a mask must cover (inclusive bounds); a draw outside it is
#: redrawn.
MASK_FRACTION: tuple[float, float] = (0.03, 0.40)

#: Prefix of the item ids: ``inpaint_000000``, ...
ID_PREFIX = "inpaint_"

#: Draws per item before a mask of the right size is given up on (a bug, not bad luck).
MAX_MASK_DRAWS = 50

#: Attempts (new prompt, new noise) when a pipeline's safety checker flags an output.
MAX_FLAGGED_ATTEMPTS = 3

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


class InpaintConfig(ConfigModel):
    """How :func:`make_inpainting_pairs` runs the pipeline."""

    #: A diffusers inpainting pipeline: hub id or local folder.
    model: str
    #: Denoising steps and classifier-free guidance scale (diffusers' SD defaults).
    steps: int = Field(30, ge=1)
    guidance: float = Field(7.5, ge=0.0)
    #: The longer side the pipeline works at (rounded to a multiple of 8): 512 for SD 1.5/2
    #: inpainting, 1024 for SDXL inpainting.
    resolution: int = Field(512, ge=32)
    shapes: tuple[Literal["strokes", "ellipse", "polygon"], ...] = MASK_SHAPES
    device: str = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    local_files_only: bool = False

    @field_validator("shapes")
    @classmethod
    def _some_shape(cls, shapes: tuple[str, ...]) -> tuple[str, ...]:
        if not shapes:
            raise ValueError("give at least one of " + ", ".join(MASK_SHAPES))
        return shapes


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` (recursively, sorted, hidden entries skipped)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--from-images: {root} is not a folder")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file() and not is_hidden(p, root)
    )
    if not files:
        raise ConfigError(f"--from-images: no image files under {root}")
    return files


# ------------------------------------------------------------------------------ masks


def _stroke_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Free-form brush strokes: a few random walks drawn with a thick round brush."""
    import cv2

    width, height = size
    mask = np.zeros((height, width), np.uint8)
    side = min(width, height)
    for _ in range(int(rng.integers(1, 4))):
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        brush = max(2, int(side * rng.uniform(0.04, 0.10)))
        for _ in range(int(rng.integers(3, 8))):
            angle = float(rng.uniform(0, 2 * math.pi))
            length = side * float(rng.uniform(0.1, 0.3))
            nx = float(np.clip(x + length * math.cos(angle), 0, width - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, height - 1))
            cv2.line(mask, (int(x), int(y)), (int(nx), int(ny)), 255, brush, cv2.LINE_8)
            cv2.circle(mask, (int(nx), int(ny)), brush // 2, 255, -1, cv2.LINE_8)
            x, y = nx, ny
    return mask > 0


def _ellipse_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    import cv2

    width, height = size
    mask = np.zeros((height, width), np.uint8)
    axes = (int(width * rng.uniform(0.1, 0.3)), int(height * rng.uniform(0.1, 0.3)))
    centre = (int(rng.uniform(0.2, 0.8) * width), int(rng.uniform(0.2, 0.8) * height))
    cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_8)
    return mask > 0


def _polygon_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A star-shaped polygon: vertices at sorted angles and random radii round a centre."""
    import cv2

    width, height = size
    mask = np.zeros((height, width), np.uint8)
    count = int(rng.integers(5, 11))
    angles = np.sort(rng.uniform(0, 2 * math.pi, count))
    radius = min(width, height) * rng.uniform(0.12, 0.35)
    radii = radius * rng.uniform(0.5, 1.0, count)
    cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    cv2.fillPoly(mask, [points.round().astype(np.int32)], 255, cv2.LINE_8)
    return mask > 0


_MASK_DRAWERS = {"strokes": _stroke_mask, "ellipse": _ellipse_mask, "polygon": _polygon_mask}


def draw_mask(shape: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A ``(H, W)`` bool mask of ``shape`` covering :data:`MASK_FRACTION` of the image."""
    low, high = MASK_FRACTION
    for _ in range(MAX_MASK_DRAWS):
        mask = _MASK_DRAWERS[shape](size, rng)
        if low <= float(mask.mean()) <= high:
            return mask
    raise RuntimeError(  # pragma: no cover - the drawers' ranges make this unreachable
        f"no {shape} mask covering {low:.0%}-{high:.0%} of a {size[0]}x{size[1]} image "
        f"in {MAX_MASK_DRAWS} draws"
    )


# --------------------------------------------------------------------------- pipeline


def working_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """``(width, height)`` with the longer side ``resolution`` and both sides multiples
    of 8 (what SD pipelines accept), the aspect ratio kept as near as that allows."""
    width, height = size
    scale = resolution / max(width, height)
    return (max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8))


def load_inpainting_pipeline(config: InpaintConfig):
    """``AutoPipelineForInpainting.from_pretrained(config.model)`` on the device and in
    the dtype :mod:`sigma_iml.device` picks (bf16 weights where bf16 runs, else float32).

    Plain safetensors and fp16-variant-only models both load (SD 1.5 inpainting publishes
    only ``*.fp16.safetensors``; :func:`sigma_iml.hub.weight_variants`); fp16 weights are
    cast to the picked dtype. A hub download fetches safetensors only, never pickles."""
    from diffusers import AutoPipelineForInpainting

    from ...device import resolve_device, weights_dtype
    from ...hub import load_variant, resolve_pretrained

    device = resolve_device(config.device)
    dtype = weights_dtype(device, config.precision)
    source, local_files_only = resolve_pretrained(config.model, config.local_files_only)
    # A local folder keeps diffusers' choice (its pickles load as before); a download
    # must be safetensors, so an fp16-only repository fails fast and is retried as fp16.
    use_safetensors = None if Path(source).expanduser().is_dir() else True
    pipeline = load_variant(
        lambda variant: AutoPipelineForInpainting.from_pretrained(
            source,
            dtype=dtype,
            variant=variant,
            use_safetensors=use_safetensors,
            local_files_only=local_files_only,
        ),
        source,
        f"inpainting pipeline {config.model!r}",
    )
    pipeline = pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, device


def inpaint(
    pipeline: Any,
    image: np.ndarray,
    mask: np.ndarray,
    prompt: str,
    config: InpaintConfig,
    seed: int,
) -> tuple[np.ndarray, bool]:
    """The composited edited image (``image`` outside ``mask``, the pipeline's repaint
    resized to ``image``'s size inside it) and whether a safety checker flagged it."""
    import torch
    from PIL import Image

    height, width = mask.shape
    work = working_size((width, height), config.resolution)
    image_in = Image.fromarray(image).resize(work, Image.Resampling.BICUBIC)
    # Nearest, so the pipeline's mask is the same region, not a blurred rim around it.
    mask_in = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).resize(
        work, Image.Resampling.NEAREST
    )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    result = pipeline(
        prompt=prompt,
        image=image_in,
        mask_image=mask_in,
        width=work[0],
        height=work[1],
        num_inference_steps=config.steps,
        guidance_scale=config.guidance,
        generator=generator,
        output_type="np",
    )
    flags = getattr(result, "nsfw_content_detected", None)
    flagged = bool(flags[0]) if flags else False
    painted = np.nan_to_num(np.asarray(result.images[0], dtype=np.float32))
    painted = (np.clip(painted, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if painted.shape[:2] != (height, width):
        painted = np.asarray(
            Image.fromarray(painted).resize((width, height), Image.Resampling.BICUBIC)
        )
    return np.where(mask[..., None], painted, image), flagged


# ---------------------------------------------------------------------------- writing


def _prompt(shape: str, rng: np.random.Generator) -> tuple[str, str]:
    prompts = STUFF_PROMPTS if shape == "strokes" else OBJECT_PROMPTS
    return prompts[int(rng.integers(len(prompts)))]


def make_inpainting_pairs(
    out: str | os.PathLike,
    images: str | os.PathLike,
    n: int,
    config: InpaintConfig,
    seed: int = 0,
    *,
    pipeline: Any = None,
) -> Path:
    """Write ``n`` inpainting pairs from the images under ``images`` into ``out`` (the
    layout of :func:`~sigma_iml.data.synth.make_pairs`: ``original/``, ``edited/``,
    ``mask/`` PNGs and ``manifest.jsonl``) and return the manifest's path.

    Item ``i`` uses image ``i mod count`` (sorted names) and mask shape
    ``config.shapes[i mod len(shapes)]``. Manifest records have ``id``, ``original``,
    ``edited``, ``mask``, ``instruction`` (``add <prompt>``), ``edit_type``/``action``
    ``add``, ``original_concept`` ``"null"``, ``edited_concept``,
    ``original_concept_mask`` (null) and ``edited_concept_mask`` (the mask), ``prompt``,
    ``mask_shape``, ``source_image`` (relative to ``images``), ``model``, ``steps``,
    ``guidance``, ``working_size``, ``width``, ``height``, ``mask_fraction``, ``seed``
    and ``index``. An image that cannot be decoded is a :class:`DataError` naming it.
    """
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    sources = list_images(images)
    root = Path(images)
    out = Path(out)
    for name in ("original", "edited", "mask"):
        (out / name).mkdir(parents=True, exist_ok=True)
    if pipeline is None and n > 0:
        pipeline, _ = load_inpainting_pipeline(config)
    lines = []
    for index in range(n):
        source = sources[index % len(sources)]
        item_id = f"{ID_PREFIX}{index:06d}"
        try:
            original = load_image(source)
        except DataError as err:
            raise err.with_item(item_id) from None
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        shape = config.shapes[index % len(config.shapes)]
        height, width = original.shape[:2]
        mask = draw_mask(shape, (width, height), rng)
        for attempt in range(MAX_FLAGGED_ATTEMPTS):
            attempts = attempt + 1
            prompt, concept = _prompt(shape, rng)
            noise_seed = int(rng.integers(2**31 - 1))
            edited, flagged = inpaint(pipeline, original, mask, prompt, config, noise_seed)
            if not flagged:
                break
        else:
            raise DataError(
                f"the pipeline's safety checker flagged {MAX_FLAGGED_ATTEMPTS} outputs",
                item=item_id,
                source=str(source),
            )
        paths = {}
        mask_png = np.where(mask, 255, 0).astype(np.uint8)
        for name, array in (("original", original), ("edited", edited), ("mask", mask_png)):
            relative = f"{name}/{item_id}.png"
            atomic_write_bytes(out / relative, encode_png(array, compress_level=3))
            paths[name] = relative
        record = {
            "id": item_id,
            **paths,
            "instruction": f"add {prompt}",
            "edit_type": "add",
            "original_concept": "null",
            "edited_concept": concept,
            "action": "add",
            # The new concept is painted into the mask: its region on the edited image
            # (training's ``priors: masks``); an add has no original concept.
            "original_concept_mask": None,
            "edited_concept_mask": paths["mask"],
            "prompt": prompt,
            "mask_shape": shape,
            "source_image": source.relative_to(root).as_posix(),
            "model": config.model,
            "steps": config.steps,
            "guidance": config.guidance,
            "working_size": list(working_size((width, height), config.resolution)),
            "width": width,
            "height": height,
            "mask_fraction": round(float(mask.mean()), 6),
            "seed": seed,
            "index": index,
            "attempts": attempts,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "".join(line + "\n" for line in lines))
    return manifest


def parse_shapes(text: str | None) -> tuple[str, ...]:
    """Comma-separated mask shapes; ``None`` or empty means all of :data:`MASK_SHAPES`."""
    if text is None or not text.strip():
        return MASK_SHAPES
    shapes = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [s for s in shapes if s not in MASK_SHAPES]
    if unknown:
        raise ConfigError(
            f"unknown mask shape(s) {', '.join(unknown)}; choose from {', '.join(MASK_SHAPES)}"
        )
    return shapes


__all__: Sequence[str] = [
    "InpaintConfig",
    "MASK_SHAPES",
    "draw_mask",
    "inpaint",
    "list_images",
    "load_inpainting_pipeline",
    "make_inpainting_pairs",
    "parse_shapes",
    "working_size",
]
