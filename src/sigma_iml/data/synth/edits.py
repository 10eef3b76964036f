"""The five edit kinds of synthetic pairs (add, remove, attribute change, replace,
global), each an image change with its instruction and ground-truth parse."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .scenes import TEXTURE_PHOTOS, Scene, cut_object, donor_object, load_photo, pick_region

#: The edit kinds, spelled as the SIGMA parser's action types.
EDIT_KINDS: tuple[str, ...] = ("add", "remove", "attribute change", "replace", "global")


def _feather(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft ``(H, W)`` float32 alpha from a bool region: a Gaussian blur of sigma
    0.8-2 px, the soft edge editors and compositing tools leave."""
    return cv2.GaussianBlur(region.astype(np.float32), (0, 0), rng.uniform(0.8, 2.0))


def _composite(base: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``base`` with ``layer`` blended over it by ``alpha``, rounded to uint8."""
    base_f = base.astype(np.float32)
    blended = base_f + alpha[:, :, None] * (layer.astype(np.float32) - base_f)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _position_phrase(region: np.ndarray) -> str:
    """Where a region lies, in the words of editing instructions ("on the left",
    "in the top right corner"), from its centroid's third of the image."""
    height, width = region.shape
    ys, xs = np.nonzero(region)
    column = min(int(3 * xs.mean() / width), 2)
    row = min(int(3 * ys.mean() / height), 2)
    horizontal = ("left", "", "right")[column]
    vertical = ("top", "", "bottom")[row]
    if horizontal and vertical:
        return f"in the {vertical} {horizontal} corner"
    if horizontal:
        return f"on the {horizontal}"
    if vertical:
        return f"at the {vertical}"
    return "in the center"


def _with_article(concept: str) -> str:
    return f"{'an' if concept[0] in 'aeiou' else 'a'} {concept}"


def _paste(
    image: np.ndarray,
    patch: np.ndarray,
    region: np.ndarray,
    top_left: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with ``patch`` pasted through its feathered ``region`` at ``top_left``
    (x, y; the part outside the image is dropped). Returns ``(edited, placed region)``."""
    height, width = image.shape[:2]
    layer = image.copy()
    placed = np.zeros((height, width), bool)
    x, y = top_left
    ph, pw = region.shape
    sx0, sy0 = max(0, -x), max(0, -y)
    dx0, dy0 = max(0, x), max(0, y)
    dx1, dy1 = min(width, x + pw), min(height, y + ph)
    layer[dy0:dy1, dx0:dx1] = patch[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    placed[dy0:dy1, dx0:dx1] = region[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    return _composite(image, layer, _feather(placed, rng)), placed


def _inpaint(image: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` with ``region`` (dilated by 2-4 px, as editors' masks are loose) filled
    from its surroundings by ``cv2.inpaint`` (Telea or Navier-Stokes, radius 3-7 px) and
    blended back with a soft edge inside the dilated region."""
    grow = int(rng.integers(2, 5))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    hole = cv2.dilate(region.astype(np.uint8), kernel)
    method = cv2.INPAINT_TELEA if rng.random() < 0.5 else cv2.INPAINT_NS
    filled = cv2.inpaint(np.ascontiguousarray(image), hole * 255, float(rng.integers(3, 8)), method)
    # The blurred alpha reaches a little outside the hole, but inpaint left every pixel
    # there as it was, so the blend changes nothing outside the hole.
    return _composite(image, filled, _feather(hole.astype(bool), rng))


# -------------------------------------------------------------------------- edits


@dataclass
class Edit:
    """What an edit function returns: the edited image, the instruction and its
    ground-truth parse, the donor photo (if any) and edit-specific details."""

    edited: np.ndarray
    instruction: str
    original_concept: str
    edited_concept: str
    donor_photo: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: Where the original concept is on the original image and the edited concept on the
    #: edited image (bool, image size); None where the tuple has no such concept (``null``
    #: or global). What a perfect grounder would return: the masks training's
    #: ``priors: masks`` turns into the intent map (docs/design.md, "Training priors").
    original_region: np.ndarray | None = None
    edited_region: np.ndarray | None = None


def _choice(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _edit_add(scene: Scene, rng: np.random.Generator, generic: bool) -> Edit:
    height, width = scene.image.shape[:2]
    donor, concept, pixels, box = donor_object(scene.photo.name, rng)
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    # Scale the object so its blob (about pi/4 of its box) covers 4-25% of the image,
    # but never more than 90% of either side.
    target_area = rng.uniform(0.04, 0.25) * width * height
    scale = math.sqrt(target_area / (math.pi / 4.0 * box_w * box_h))
    patch, region = cut_object(pixels, box, scale, (height, width), rng)
    out_h, out_w = region.shape
    top_left = (int(rng.integers(0, width - out_w + 1)), int(rng.integers(0, height - out_h + 1)))
    edited, placed = _paste(scene.image, patch, region, top_left, rng)
    where = _position_phrase(placed)
    template = _choice(
        ("add {a} {where}", "put {a} {where}", "insert {a} {where}", "place {a} {where}"), rng
    )
    return Edit(
        edited,
        template.format(a=_with_article(concept), where=where),
        "null",
        concept,
        donor.name,
        {"position": where},
        edited_region=placed,
    )


def _edit_remove(scene: Scene, rng: np.random.Generator, generic: bool) -> Edit:
    region, concept, unique = pick_region(scene, rng, generic=generic)
    edited = _inpaint(scene.image, region, rng)
    if unique:
        template = _choice(
            (
                "remove the {c}",
                "delete the {c}",
                "erase the {c}",
                "take away the {c}",
                "get rid of the {c}",
                "remove the {c} from the picture",
            ),
            rng,
        )
        instruction = template.format(c=concept)
    else:  # the concept alone does not say which region: add where it is
        template = _choice(("remove the {c} {where}", "erase the {c} {where}"), rng)
        instruction = template.format(c=concept, where=_position_phrase(region))
    return Edit(edited, instruction, concept, "null", original_region=region)


#: Colour names of attribute edits and their hue in degrees (OpenCV float HSV scale).
COLOR_HUES: dict[str, float] = {
    "red": 0.0,
    "orange": 28.0,
    "yellow": 55.0,
    "green": 120.0,
    "teal": 175.0,
    "blue": 220.0,
    "purple": 275.0,
    "pink": 325.0,
}


def _edit_attribute(scene: Scene, rng: np.random.Generator, generic: bool) -> Edit:
    region, concept, unique = pick_region(scene, rng, generic=generic)
    rgb = scene.image.astype(np.float32) / 255.0
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hue, saturation = hsv[:, :, 0], hsv[:, :, 1]
    # Saturation-weighted circular mean hue of the region: the new colour must be far
    # from the current one, or "make the motorcycle red" would change nothing.
    weights = saturation[region]
    radians = np.deg2rad(hue[region])
    mean_hue = math.degrees(
        math.atan2(
            float((weights * np.sin(radians)).sum()), float((weights * np.cos(radians)).sum())
        )
    )
    colorful = float(weights.mean()) > 0.15
    candidates = [
        name
        for name, value in COLOR_HUES.items()
        if not colorful or abs((value - mean_hue + 180.0) % 360.0 - 180.0) > 60.0
    ]
    color = _choice(candidates, rng)
    recoloured = hsv.copy()
    # Keep a trace of the original hue variation so the recoloured object keeps texture.
    hue_offset = ((hue - mean_hue + 180.0) % 360.0 - 180.0) * 0.15
    recoloured[:, :, 0] = (COLOR_HUES[color] + hue_offset) % 360.0
    recoloured[:, :, 1] = np.maximum(saturation, rng.uniform(0.45, 0.7))
    layer = np.clip(cv2.cvtColor(recoloured, cv2.COLOR_HSV2RGB) * 255.0, 0, 255)
    edited = _composite(scene.image, layer, _feather(region, rng))
    where = "" if unique else f" {_position_phrase(region)}"
    template = _choice(
        (
            "make the {c}{where} {color}",
            "change the color of the {c}{where} to {color}",
            "turn the {c}{where} {color}",
            "paint the {c}{where} {color}",
        ),
        rng,
    )
    instruction = template.format(c=concept, where=where, color=color)
    return Edit(
        edited,
        instruction,
        concept,
        f"{color} {concept}",
        details={"color": color},
        original_region=region,
        edited_region=region,
    )


def _edit_replace(scene: Scene, rng: np.random.Generator, generic: bool) -> Edit:
    height, width = scene.image.shape[:2]
    region, concept, unique = pick_region(scene, rng, generic=generic)
    ys, xs = np.nonzero(region)
    rx0, rx1, ry0, ry1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    use_texture = rng.random() < 0.25
    if use_texture:
        # A material swap ("turn the wood into marble"): the same shape, new content.
        texture = TEXTURE_PHOTOS[int(rng.integers(len(TEXTURE_PHOTOS)))]
        pixels = load_photo(texture.name)
        th, tw = pixels.shape[:2]
        rw, rh = int(rx1 - rx0), int(ry1 - ry0)
        tx = int(rng.integers(0, max(1, tw - rw)))
        ty = int(rng.integers(0, max(1, th - rh)))
        layer = scene.image.copy()
        layer[ry0:ry1, rx0:rx1] = cv2.resize(
            pixels[ty : ty + rh, tx : tx + rw], (rw, rh), interpolation=cv2.INTER_AREA
        )
        edited = _composite(scene.image, layer, _feather(region, rng))
        donor_name, new_concept, new_phrase = texture.name, texture.texture_concept, None
        new_region = region
    else:
        # An object swap: the old object is inpainted away, then the new one pasted over
        # its place, fitted to the old object's extent.
        donor, new_concept, pixels, box = donor_object(scene.photo.name, rng)
        background = _inpaint(scene.image, region, rng)
        box_w, box_h = box[2] - box[0], box[3] - box[1]
        scale = min((rx1 - rx0) / box_w, (ry1 - ry0) / box_h) * rng.uniform(0.9, 1.15)
        patch, donor_region = cut_object(pixels, box, scale, (height, width), rng)
        out_h, out_w = donor_region.shape
        center_x, center_y = (rx0 + rx1) / 2.0, (ry0 + ry1) / 2.0
        top_left = (int(round(center_x - out_w / 2.0)), int(round(center_y - out_h / 2.0)))
        edited, new_region = _paste(background, patch, donor_region, top_left, rng)
        donor_name, new_phrase = donor.name, _with_article(new_concept)
    target = concept if unique else f"{concept} {_position_phrase(region)}"
    if new_phrase is None:  # textures take no article: "turn the cup into grass"
        templates = ("turn the {c} into {new}", "replace the {c} with {new}")
        new_phrase = new_concept
    else:
        templates = (
            "replace the {c} with {new}",
            "swap the {c} for {new}",
            "turn the {c} into {new}",
            "change the {c} to {new}",
        )
    instruction = _choice(templates, rng).format(c=target, new=new_phrase)
    return Edit(
        edited,
        instruction,
        concept,
        new_concept,
        donor_name,
        original_region=region,
        edited_region=new_region,
    )


def _sunset(rgb: np.ndarray) -> np.ndarray:
    warm = rgb * np.array([1.12, 0.96, 0.74], np.float32) + np.array([0.05, 0.02, 0.0], np.float32)
    return warm + 0.15 * (warm - 0.5) * (1.0 - np.abs(2.0 * warm - 1.0))  # gentle S-curve


def _night(rgb: np.ndarray) -> np.ndarray:
    return np.power(rgb, 1.5) * np.array([0.45, 0.55, 0.85], np.float32) + 0.02


def _winter(rgb: np.ndarray) -> np.ndarray:
    grey = rgb.mean(axis=2, keepdims=True)
    return (0.55 * rgb + 0.45 * grey) * np.array([0.92, 0.99, 1.10], np.float32) + 0.07


def _sepia(rgb: np.ndarray) -> np.ndarray:
    matrix = np.array(
        [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32
    )
    return 0.88 * (rgb @ matrix.T) + 0.04  # slightly faded, as old prints are


def _black_and_white(rgb: np.ndarray) -> np.ndarray:
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(luma[:, :, None], 3, axis=2)


def _vivid(rgb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * 1.6, 0.0, 1.0)
    return (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) - 0.5) * 1.25 + 0.5


def _faded(rgb: np.ndarray) -> np.ndarray:
    return rgb * np.array([0.72, 0.70, 0.66], np.float32) + np.array([0.16, 0.15, 0.13], np.float32)


#: Global styles: name -> (transform of float RGB in [0, 1], instruction phrasings).
GLOBAL_STYLES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[str, ...]]] = {
    "sunset": (
        _sunset,
        ("make it look like sunset", "change the time to sunset", "make it golden hour"),
    ),
    "night": (
        _night,
        ("make it night", "turn it into a night scene", "make it look like nighttime"),
    ),
    "winter": (_winter, ("make it look like winter", "give it a cold winter mood")),
    "sepia": (_sepia, ("make it look like an old photo", "apply a sepia filter")),
    "black and white": (_black_and_white, ("make it black and white", "convert it to grayscale")),
    "vivid": (_vivid, ("make the colors more vivid", "make it more dramatic")),
    "faded": (_faded, ("make it look faded", "make it look like vintage film")),
}


def _edit_global(scene: Scene, rng: np.random.Generator, generic: bool) -> Edit:
    style = _choice(tuple(GLOBAL_STYLES), rng)
    transform, phrasings = GLOBAL_STYLES[style]
    rgb = scene.image.astype(np.float32) / 255.0
    strength = rng.uniform(0.75, 1.0)  # editors rarely apply a look at full strength
    styled = rgb + strength * (transform(rgb) - rgb)
    edited = np.clip(np.rint(styled * 255.0), 0, 255).astype(np.uint8)
    return Edit(edited, _choice(phrasings, rng), "null", "null", details={"style": style})


EDITORS: dict[str, Callable[[Scene, np.random.Generator, bool], Edit]] = {
    "add": _edit_add,
    "remove": _edit_remove,
    "attribute change": _edit_attribute,
    "replace": _edit_replace,
    "global": _edit_global,
}
