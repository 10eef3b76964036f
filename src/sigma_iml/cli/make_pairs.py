"""``sigma-iml make-pairs``: write synthetic editing pairs with exact masks.

The generator itself is :mod:`sigma_iml.data.synth`; it is imported inside the command so
that ``sigma-iml --help`` does not pay for OpenCV and scikit-image.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

from .options import WeightsFolder

# Kept literal (not imported from synth) for the reason above; checked against
# ``synth.EDIT_KINDS`` by the tests.
_KIND_NAMES = ("add", "remove", "attribute change", "replace", "global")


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """Comma-separated edit kinds to a tuple; ``None`` or empty means all five.
    ``attribute_change`` and ``attribute-change`` are accepted for ``attribute change``
    (a space is awkward on a command line)."""
    if text is None or not text.strip():
        return _KIND_NAMES
    kinds = tuple(
        re.sub(r"[\s_-]+", " ", part.strip().lower()) for part in text.split(",") if part.strip()
    )
    unknown = [kind for kind in kinds if kind not in _KIND_NAMES]
    if unknown:
        raise typer.BadParameter(
            f"unknown edit kind(s) {', '.join(unknown)}; choose from {', '.join(_KIND_NAMES)}",
            param_hint="--kinds",
        )
    return kinds


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"WxH"`` (or a single number for a square) to ``(width, height)``."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if match is None:
        raise typer.BadParameter(f"expected WxH such as 256x192, got {text!r}", param_hint="--size")
    width = int(match.group(1))
    height = int(match.group(2) or width)
    return width, height


def make_pairs_command(
    out: Path = typer.Option(
        ..., "--out", help="Folder to write original/, edited/, mask/ and manifest.jsonl into."
    ),
    n: int = typer.Option(16, "--n", min=0, help="Number of pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives identical files."),
    noise: float = typer.Option(
        0.0,
        "--noise",
        min=0.0,
        help="Re-synthesis noise on the edited images: 0 = none, 1 = strong but realistic "
        "(JPEG, resampling, sub-pixel shift, colour drift). Masks never include it.",
    ),
    kinds: str | None = typer.Option(
        None,
        "--kinds",
        help="Comma-separated edit kinds (default: all): add, remove, attribute change "
        "(or attribute_change), replace, global. Items cycle through them.",
    ),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Force every image to WxH pixels (default: each side drawn from 192-320).",
    ),
    side_effects: float | None = typer.Option(
        None,
        "--side-effects",
        min=0.0,
        max=1.0,
        help="Probability that a local edit also gets an unasked edit elsewhere (colour "
        "shift, small paste or removal); the manifest then has intended_mask, "
        "side_effect_mask and mask (their union). Default: off.",
    ),
    # Inpainting pairs (data/synth/inpainting.py); --n, --seed and --out apply too.
    from_images: Path | None = typer.Option(
        None,
        "--from-images",
        help="Make inpainting pairs from the images in this folder (needs --inpaint).",
    ),
    inpaint_model: str | None = typer.Option(
        None,
        "--inpaint",
        help="A diffusers inpainting pipeline (hub id or folder), e.g. "
        "stable-diffusion-v1-5/stable-diffusion-inpainting.",
    ),
    mask_shapes: str | None = typer.Option(
        None, "--mask-shapes", help="Inpainting masks: strokes, ellipse, polygon (default: all)."
    ),
    steps: int = typer.Option(30, "--steps", min=1, help="Inpainting: denoising steps."),
    guidance: float = typer.Option(7.5, "--guidance", min=0.0, help="Inpainting: guidance scale."),
    resolution: int = typer.Option(
        512, "--resolution", min=32, help="Inpainting: the pipeline's longer side (SDXL: 1024)."
    ),
    device: str = typer.Option("auto", "--device", help="Inpainting: auto, cpu, cuda, cuda:1."),
    precision: str = typer.Option("auto", "--precision", help="Inpainting: auto, bf16, fp32."),
    weights: WeightsFolder = None,
) -> None:
    """Write synthetic (original, edited, instruction, mask) pairs made from the photos
    bundled with scikit-image, with exact masks of the changed pixels."""
    from ..data.synth import make_pairs
    from ..errors import ConfigError

    if from_images is not None or inpaint_model is not None:
        _make_inpainting_pairs(
            out,
            n,
            seed,
            from_images,
            inpaint_model,
            mask_shapes,
            steps,
            guidance,
            resolution,
            device,
            precision,
        )
        return
    edit_kinds = parse_kinds(kinds)
    forced_size = parse_size(size)
    try:
        manifest = make_pairs(
            out, n, seed, noise, kinds=edit_kinds, size=forced_size, side_effects=side_effects
        )
    except ConfigError as error:
        raise typer.BadParameter(str(error)) from error
    typer.echo(f"wrote {n} pairs; manifest: {manifest}")


def _make_inpainting_pairs(
    out: Path,
    n: int,
    seed: int,
    from_images: Path | None,
    model: str | None,
    mask_shapes: str | None,
    steps: int,
    guidance: float,
    resolution: int,
    device: str,
    precision: str,
) -> None:
    """``--from-images DIR --inpaint MODEL``: pairs made by a diffusers inpainting pipeline."""
    from ..data.synth.inpainting import InpaintConfig, make_inpainting_pairs, parse_shapes
    from ..errors import SigmaError

    if from_images is None or model is None:
        raise typer.BadParameter("--from-images and --inpaint go together", param_hint="--inpaint")
    try:
        config = InpaintConfig.from_dict(
            {
                "model": model,
                "steps": steps,
                "guidance": guidance,
                "resolution": resolution,
                "shapes": parse_shapes(mask_shapes),
                "device": device,
                "precision": precision,
            },
            where="make-pairs",
        )
        manifest = make_inpainting_pairs(out, from_images, n, config, seed)
    except SigmaError as error:
        raise typer.BadParameter(str(error)) from error
    typer.echo(f"wrote {n} inpainting pairs; manifest: {manifest}")


def register(app: typer.Typer) -> None:
    """Add the ``make-pairs`` command to ``app``."""
    app.command("make-pairs")(make_pairs_command)
