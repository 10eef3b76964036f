"""Deterministic synthetic editing pairs with exact masks, made from real photos.

:func:`make_pairs` turns the photographs that scikit-image ships inside its wheel
(astronaut, chelsea, coffee, rocket, camera, coins, ...: only those that load offline,
never a ``pooch`` download) into ``(original, edited, instruction, mask)`` quadruples of
the five edit kinds of the SIGMA instruction parser:

``add``
    an object cut (as an irregular, object-shaped blob) from *another* photo and pasted
    with a feathered edge: "add a cat on the left".
``remove``
    an object-shaped region filled from its surroundings with ``cv2.inpaint``:
    "remove the coffee cup".
``attribute change``
    the hue (and, for grey content, the saturation) of an object-shaped region changed:
    "make the motorcycle blue".
``replace``
    an object removed by inpainting, then an object from another photo (or a texture:
    grass, bricks, gravel) pasted in its place: "replace the rocket with a cat".
``global``
    a whole-image colour/tone change: "make it look like sunset".

Mask rule. For the four local kinds the mask is *exactly* the set of pixels whose
stored value the edit changed (any channel), computed after feathering and rounding to
8 bits: every pixel outside the mask is identical in the original and the edited image,
and every pixel inside it differs. It is not a loose shape drawn around the edit, so it
may have a few holes where, say, an inpainted pixel happens to round back to its old
value. For ``global`` edits the mask is the whole image (all 255): the instruction
targets every pixel, which is also how IML benchmarks label fully regenerated images,
even though a few pixels (pure black under "make it night", say) may keep their value.

Re-synthesis noise. With ``noise > 0`` the *edited* image is then passed through the
kind of degradation a diffusion editor applies to every pixel (colour drift, down/up
resampling, sub-pixel shift, JPEG re-encoding; see :func:`resynthesis_noise`). The mask
does not include that noise: it is not a semantic edit. This is what the pixel-difference
baselines trip over and what SIGMA's noise calibration targets.

Determinism. Item ``i`` of seed ``s`` draws all its randomness from
``numpy.random.SeedSequence([s, i])`` (the edit and the noise from two independent
children of it), so an item is byte-identical whatever ``n`` is, adding noise does not
change the edit or its mask, and different seeds never share items (as ``s + i`` would:
seed 0 item 1 would equal seed 1 item 0). The edit kind of item ``i`` is
``kinds[i % len(kinds)]``, so kinds are evenly represented.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import ConfigError
from .io import atomic_write_bytes, atomic_write_text, encode_png

#: The edit kinds, spelled as the SIGMA parser's action types.
EDIT_KINDS: tuple[str, ...] = ("add", "remove", "attribute change", "replace", "global")

#: Side lengths (pixels, inclusive) drawn for each item when ``size`` is not given: small,
#: so tests stay fast, and width and height drawn independently, so most items are
#: non-square. Drawn in steps of :data:`SIZE_STEP`, like the sizes editors emit.
DEFAULT_SIDE_RANGE: tuple[int, int] = (192, 320)
SIZE_STEP = 8

#: A local edit's mask must cover this fraction of the image (inclusive bounds); an
#: attempt outside it is redrawn.
LOCAL_MASK_FRACTION: tuple[float, float] = (0.02, 0.50)

#: A global edit must change at least this fraction of the pixels (a style that leaves
#: the image nearly as it was, e.g. "black and white" of a grey photo, is redrawn).
GLOBAL_MIN_CHANGED_FRACTION = 0.5

#: Prefix of the item ids: ``synth_000000``, ``synth_000001``, ...
ID_PREFIX = "synth_"

#: Attempts per item before giving up; later attempts use generic regions, which almost
#: always succeed, so reaching the limit means a bug rather than bad luck.
MAX_ATTEMPTS = 24

# Attempts from this one on ignore the named objects and edit a generic blob.
_GENERIC_FROM_ATTEMPT = 6

# ----------------------------------------------------------------------------- photos


@dataclass(frozen=True)
class SceneObject:
    """A nameable thing in a source photo: its concept name (a short noun phrase, as the
    parser should extract it) and its box as fractions ``(x0, y0, x1, y1)`` of the
    photo's width and height. Edits draw an object-shaped blob inside the box."""

    concept: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class SourcePhoto:
    """One photo of ``skimage.data``: ``name`` is the loader's name there.

    ``generic_concept`` names a region that is not one of ``objects`` ("object" in a
    scene, "patch" in a texture-like image). A texture photo is used only as the
    content of a replacement ("turn the cup into grass"), named ``texture_concept``.
    """

    name: str
    objects: tuple[SceneObject, ...] = ()
    generic_concept: str = "object"
    texture_concept: str | None = None

    @property
    def is_texture(self) -> bool:
        return self.texture_concept is not None


def _objects(*items: tuple[str, tuple[float, float, float, float]]) -> tuple[SceneObject, ...]:
    return tuple(SceneObject(concept, box) for concept, box in items)


#: Photos used as the scene being edited and as donors of pasted objects. Boxes were read
#: off the photos by eye; a blob drawn inside one covers most of the object.
SCENE_PHOTOS: tuple[SourcePhoto, ...] = (
    SourcePhoto(
        "astronaut",
        _objects(
            ("astronaut", (0.06, 0.05, 0.72, 1.00)),
            ("face", (0.34, 0.15, 0.56, 0.40)),
            ("helmet", (0.55, 0.67, 1.00, 1.00)),
            ("flag", (0.00, 0.00, 0.17, 0.45)),
            ("space shuttle model", (0.71, 0.00, 0.91, 0.55)),
            ("mission patch", (0.26, 0.67, 0.41, 0.83)),
        ),
    ),
    SourcePhoto(
        "chelsea",
        _objects(
            ("cat", (0.08, 0.02, 0.84, 1.00)),
            ("cat's eye", (0.29, 0.27, 0.47, 0.50)),
            ("cat's nose", (0.48, 0.70, 0.66, 0.89)),
        ),
    ),
    SourcePhoto(
        "coffee",
        _objects(
            ("coffee cup", (0.28, 0.04, 0.70, 0.76)),
            ("saucer", (0.12, 0.20, 0.80, 0.97)),
            ("spoon", (0.53, 0.16, 0.70, 0.82)),
        ),
    ),
    SourcePhoto(
        "rocket",
        _objects(
            ("rocket", (0.46, 0.29, 0.54, 0.97)),
            ("launch tower", (0.00, 0.00, 0.14, 1.00)),
            ("lightning mast", (0.67, 0.28, 0.73, 1.00)),
        ),
    ),
    SourcePhoto(
        "stereo_motorcycle",
        _objects(
            ("motorcycle", (0.13, 0.17, 0.93, 0.90)),
            ("front wheel", (0.69, 0.58, 0.93, 0.90)),
            ("rear wheel", (0.16, 0.46, 0.38, 0.80)),
            ("fuel tank", (0.44, 0.31, 0.66, 0.50)),
            ("wooden bench", (0.06, 0.20, 0.38, 0.56)),
            ("cardboard box", (0.82, 0.35, 0.94, 0.56)),
        ),
    ),
    SourcePhoto(
        "camera",
        _objects(
            ("man", (0.00, 0.12, 0.66, 1.00)),
            ("video camera", (0.50, 0.26, 0.64, 0.38)),
            ("tripod", (0.44, 0.35, 0.80, 1.00)),
            ("tower", (0.79, 0.21, 0.88, 0.45)),
        ),
    ),
    SourcePhoto(
        "coins",
        _objects(
            ("coin", (0.04, 0.08, 0.19, 0.25)),
            ("coin", (0.33, 0.08, 0.48, 0.24)),
            ("coin", (0.81, 0.03, 0.97, 0.25)),
            ("coin", (0.81, 0.50, 0.98, 0.74)),
            ("coin", (0.46, 0.54, 0.61, 0.72)),
        ),
    ),
    SourcePhoto(
        "immunohistochemistry",
        _objects(("gland", (0.49, 0.59, 0.76, 0.95))),
        generic_concept="tissue",
    ),
    SourcePhoto("hubble_deep_field", generic_concept="patch"),
)

#: Photos used only as the content of a replacement: "turn the rocket into grass".
TEXTURE_PHOTOS: tuple[SourcePhoto, ...] = (
    SourcePhoto("grass", texture_concept="grass"),
    SourcePhoto("brick", texture_concept="bricks"),
    SourcePhoto("gravel", texture_concept="gravel"),
)

_PHOTOS_BY_NAME = {photo.name: photo for photo in SCENE_PHOTOS + TEXTURE_PHOTOS}


@cache
def load_photo(name: str) -> np.ndarray:
    """The ``skimage.data`` photo ``name`` as a read-only ``(H, W, 3)`` uint8 RGB array
    (grey photos repeated over three channels; the left view of a stereo pair).

    Only photos bundled in the scikit-image wheel are listed, so this never downloads.
    """
    if name not in _PHOTOS_BY_NAME:
        raise ConfigError(f"unknown source photo {name!r}; known: {sorted(_PHOTOS_BY_NAME)}")
    import skimage.data  # deferred: importing skimage costs ~0.5 s, only generation needs it

    loaded = getattr(skimage.data, name)()
    if isinstance(loaded, tuple):  # stereo_motorcycle -> (left, right, disparity)
        loaded = loaded[0]
    array = np.asarray(loaded)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    array = np.ascontiguousarray(array[:, :, :3].astype(np.uint8))
    array.setflags(write=False)  # shared by every item through the cache
    return array


# ------------------------------------------------------------------------ geometry


def _blob(
    shape: tuple[int, int],
    center: tuple[float, float],
    radii: tuple[float, float],
    rng: np.random.Generator,
    *,
    roughness: float = 0.12,
    angle: float = 0.0,
) -> np.ndarray:
    """An irregular, object-like ``(H, W)`` bool region: an ellipse of ``radii`` around
    ``center`` (x, y pixels) whose radius is modulated by a few low-frequency harmonics
    (amplitude ``roughness``), rotated by ``angle`` radians. The modulation is scaled so
    the region never leaves the ellipse's bounding box (before rotation)."""
    theta = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
    modulation = np.ones_like(theta)
    for harmonic in range(2, 6):
        amplitude = rng.uniform(0.0, roughness) * 2.0 / harmonic
        modulation += amplitude * np.cos(harmonic * theta + rng.uniform(0.0, 2.0 * math.pi))
    modulation /= modulation.max()
    local_x = radii[0] * modulation * np.cos(theta)
    local_y = radii[1] * modulation * np.sin(theta)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    xs = center[0] + cos_a * local_x - sin_a * local_y
    ys = center[1] + sin_a * local_x + cos_a * local_y
    # fillPoly takes fixed-point vertices: 4 fractional bits keep the outline sub-pixel.
    vertices = np.round(np.stack([xs, ys], axis=1) * 16.0).astype(np.int32)
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [vertices], 1, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def _blob_in_box(
    shape: tuple[int, int], box: tuple[float, float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """An object-shaped blob filling most of the pixel box ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    center = ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    radii = ((x1 - x0) / 2.0 * rng.uniform(0.85, 1.0), (y1 - y0) / 2.0 * rng.uniform(0.85, 1.0))
    return _blob(shape, center, radii, rng)


def _generic_blob(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A blob of 4-20% of the image at a random place and orientation, for photos (or
    attempts) without a usable named object."""
    height, width = shape
    area = rng.uniform(0.04, 0.20) * height * width
    aspect = rng.uniform(0.6, 1.6)
    radius_x = min(math.sqrt(area / math.pi * aspect), 0.45 * width)
    radius_y = min(area / (math.pi * radius_x), 0.45 * height)
    reach = max(radius_x, radius_y)
    center = (
        rng.uniform(min(reach, width / 2), max(width - reach, width / 2)),
        rng.uniform(min(reach, height / 2), max(height - reach, height / 2)),
    )
    return _blob(shape, center, (radius_x, radius_y), rng, angle=rng.uniform(0.0, math.pi))


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


# ------------------------------------------------------------------ scene sampling


@dataclass
class _Scene:
    """The original image of an item and the named objects visible in it (boxes in
    its pixel coordinates)."""

    photo: SourcePhoto
    image: np.ndarray
    objects: list[tuple[str, tuple[float, float, float, float]]]


def _crop_scene(photo: SourcePhoto, size: tuple[int, int], rng: np.random.Generator) -> _Scene:
    """A random crop of ``photo`` with the aspect ratio of ``size`` (width, height),
    70-100% of the largest such crop, resized to ``size``. Objects whose box keeps at
    least 70% of its area in the crop stay named (their box clipped to it)."""
    source = load_photo(photo.name)
    source_h, source_w = source.shape[:2]
    width, height = size
    aspect = width / height
    if source_w / source_h > aspect:
        crop_h, crop_w = source_h, source_h * aspect
    else:
        crop_w, crop_h = source_w, source_w / aspect
    scale = rng.uniform(0.7, 1.0)
    crop_w, crop_h = crop_w * scale, crop_h * scale
    left = rng.uniform(0.0, source_w - crop_w)
    top = rng.uniform(0.0, source_h - crop_h)
    x0, y0 = int(round(left)), int(round(top))
    x1 = min(source_w, max(x0 + 1, int(round(left + crop_w))))
    y1 = min(source_h, max(y0 + 1, int(round(top + crop_h))))
    image = cv2.resize(source[y0:y1, x0:x1], (width, height), interpolation=cv2.INTER_AREA)

    sx, sy = width / (x1 - x0), height / (y1 - y0)
    visible = []
    for obj in photo.objects:
        bx0, by0 = obj.box[0] * source_w, obj.box[1] * source_h
        bx1, by1 = obj.box[2] * source_w, obj.box[3] * source_h
        cx0, cy0, cx1, cy1 = max(bx0, x0), max(by0, y0), min(bx1, x1), min(by1, y1)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        if (cx1 - cx0) * (cy1 - cy0) < 0.7 * (bx1 - bx0) * (by1 - by0):
            continue
        box = ((cx0 - x0) * sx, (cy0 - y0) * sy, (cx1 - x0) * sx, (cy1 - y0) * sy)
        visible.append((obj.concept, box))
    return _Scene(photo, image, visible)


def _pick_region(
    scene: _Scene, rng: np.random.Generator, *, generic: bool
) -> tuple[np.ndarray, str, bool]:
    """The region to edit in ``scene``: ``(region, concept, unique)``. A visible named
    object when there is one (and ``generic`` is false), else a generic blob. ``unique``
    is false when the concept alone does not say which region is meant (a generic blob,
    one coin of many): the instruction then adds where it is ("the coin on the left")."""
    shape = scene.image.shape[:2]
    if scene.objects and not generic:
        concept, box = scene.objects[int(rng.integers(len(scene.objects)))]
        unique = sum(obj.concept == concept for obj in scene.photo.objects) == 1
        return _blob_in_box(shape, box, rng), concept, unique
    return _generic_blob(shape, rng), scene.photo.generic_concept, False


def _donor_object(
    exclude: str, rng: np.random.Generator
) -> tuple[SourcePhoto, str, np.ndarray, tuple[float, float, float, float]]:
    """A named object of a scene photo other than ``exclude``: ``(photo, concept,
    photo pixels, object box in pixels)``."""
    donors = [photo for photo in SCENE_PHOTOS if photo.objects and photo.name != exclude]
    photo = donors[int(rng.integers(len(donors)))]
    obj = photo.objects[int(rng.integers(len(photo.objects)))]
    pixels = load_photo(photo.name)
    height, width = pixels.shape[:2]
    box = (obj.box[0] * width, obj.box[1] * height, obj.box[2] * width, obj.box[3] * height)
    return photo, obj.concept, pixels, box


def _cut_object(
    pixels: np.ndarray,
    box: tuple[float, float, float, float],
    out_size: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The object in ``box`` of ``pixels`` resized to ``out_size`` (width, height), and
    its object-shaped blob there: ``(patch, region)``."""
    x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
    x1, y1 = int(math.ceil(box[2])), int(math.ceil(box[3]))
    patch = cv2.resize(pixels[y0:y1, x0:x1], out_size, interpolation=cv2.INTER_AREA)
    width, height = out_size
    region = _blob_in_box((height, width), (0.0, 0.0, float(width), float(height)), rng)
    return patch, region


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
class _Edit:
    """What an edit function returns: the edited image, the instruction and its
    ground-truth parse, the donor photo (if any) and edit-specific details."""

    edited: np.ndarray
    instruction: str
    original_concept: str
    edited_concept: str
    donor_photo: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _choice(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _edit_add(scene: _Scene, rng: np.random.Generator, generic: bool) -> _Edit:
    height, width = scene.image.shape[:2]
    donor, concept, pixels, box = _donor_object(scene.photo.name, rng)
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    # Scale the object so its blob (about pi/4 of its box) covers 4-25% of the image,
    # but never more than 90% of either side.
    target_area = rng.uniform(0.04, 0.25) * width * height
    scale = math.sqrt(target_area / (math.pi / 4.0 * box_w * box_h))
    scale = min(scale, 0.9 * width / box_w, 0.9 * height / box_h)
    out_w, out_h = max(8, int(round(box_w * scale))), max(8, int(round(box_h * scale)))
    patch, region = _cut_object(pixels, box, (out_w, out_h), rng)
    top_left = (int(rng.integers(0, width - out_w + 1)), int(rng.integers(0, height - out_h + 1)))
    edited, placed = _paste(scene.image, patch, region, top_left, rng)
    where = _position_phrase(placed)
    template = _choice(
        ("add {a} {where}", "put {a} {where}", "insert {a} {where}", "place {a} {where}"), rng
    )
    return _Edit(
        edited,
        template.format(a=_with_article(concept), where=where),
        "null",
        concept,
        donor.name,
        {"position": where},
    )


def _edit_remove(scene: _Scene, rng: np.random.Generator, generic: bool) -> _Edit:
    region, concept, unique = _pick_region(scene, rng, generic=generic)
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
    return _Edit(edited, instruction, concept, "null")


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


def _edit_attribute(scene: _Scene, rng: np.random.Generator, generic: bool) -> _Edit:
    region, concept, unique = _pick_region(scene, rng, generic=generic)
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
    return _Edit(edited, instruction, concept, f"{color} {concept}", details={"color": color})


def _edit_replace(scene: _Scene, rng: np.random.Generator, generic: bool) -> _Edit:
    height, width = scene.image.shape[:2]
    region, concept, unique = _pick_region(scene, rng, generic=generic)
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
    else:
        # An object swap: the old object is inpainted away, then the new one pasted over
        # its place, fitted to the old object's extent.
        donor, new_concept, pixels, box = _donor_object(scene.photo.name, rng)
        background = _inpaint(scene.image, region, rng)
        box_w, box_h = box[2] - box[0], box[3] - box[1]
        scale = min((rx1 - rx0) / box_w, (ry1 - ry0) / box_h) * rng.uniform(0.9, 1.15)
        scale = min(scale, 0.9 * width / box_w, 0.9 * height / box_h)
        out_w, out_h = max(8, int(round(box_w * scale))), max(8, int(round(box_h * scale)))
        patch, donor_region = _cut_object(pixels, box, (out_w, out_h), rng)
        center_x, center_y = (rx0 + rx1) / 2.0, (ry0 + ry1) / 2.0
        top_left = (int(round(center_x - out_w / 2.0)), int(round(center_y - out_h / 2.0)))
        edited, _ = _paste(background, patch, donor_region, top_left, rng)
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
    return _Edit(edited, instruction, concept, new_concept, donor_name)


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


def _edit_global(scene: _Scene, rng: np.random.Generator, generic: bool) -> _Edit:
    style = _choice(tuple(GLOBAL_STYLES), rng)
    transform, phrasings = GLOBAL_STYLES[style]
    rgb = scene.image.astype(np.float32) / 255.0
    strength = rng.uniform(0.75, 1.0)  # editors rarely apply a look at full strength
    styled = rgb + strength * (transform(rgb) - rgb)
    edited = np.clip(np.rint(styled * 255.0), 0, 255).astype(np.uint8)
    return _Edit(edited, _choice(phrasings, rng), "null", "null", details={"style": style})


_EDITORS: dict[str, Callable[[_Scene, np.random.Generator, bool], _Edit]] = {
    "add": _edit_add,
    "remove": _edit_remove,
    "attribute change": _edit_attribute,
    "replace": _edit_replace,
    "global": _edit_global,
}

# ---------------------------------------------------------------------------- noise


def resynthesis_noise(
    image: np.ndarray, level: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """``image`` degraded the way a diffusion editor's re-synthesis touches every pixel,
    and the parameters used. ``level`` 0 returns the image unchanged; 1 is strong but
    realistic; larger values go further (parameters are clamped to stay plausible):

    - colour drift: per-channel gain ``1 +- 0.02 * level`` and offset ``+- 2 * level``
      grey levels (standard deviations);
    - resampling: down by a factor ``1 - U(0.15, 0.4) * min(level, 1)``, back up with a
      random interpolation (bilinear or bicubic);
    - sub-pixel shift: ``U(-0.5, 0.5) * min(level, 1)`` px on each axis (bilinear);
    - JPEG re-encoding at quality ``97 - 27 * level +- 3``, clamped to [40, 98].
    """
    if level == 0:
        return image, {}
    height, width = image.shape[:2]
    strength = min(level, 1.0)
    gain = 1.0 + rng.normal(0.0, 0.02 * level, 3)
    offset = rng.normal(0.0, 2.0 * level, 3)
    noisy = image.astype(np.float32) * gain.astype(np.float32) + offset.astype(np.float32)
    noisy = np.clip(noisy, 0, 255)

    factor = 1.0 - rng.uniform(0.15, 0.4) * strength
    small = (max(8, int(round(width * factor))), max(8, int(round(height * factor))))
    upsample = cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_LINEAR
    noisy = cv2.resize(
        cv2.resize(noisy, small, interpolation=cv2.INTER_AREA),
        (width, height),
        interpolation=upsample,
    )

    shift = rng.uniform(-0.5, 0.5, 2) * strength
    warp = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]], np.float32)
    noisy = cv2.warpAffine(
        noisy, warp, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )

    quality = int(np.clip(round(97.0 - 27.0 * level + rng.uniform(-3.0, 3.0)), 40, 98))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=quality
    )
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        result = np.asarray(decoded.convert("RGB")).copy()
    params = {
        "color_gain": [round(float(g), 5) for g in gain],
        "color_offset": [round(float(o), 4) for o in offset],
        "resample_factor": round(float(factor), 5),
        "upsample": "bicubic" if upsample == cv2.INTER_CUBIC else "bilinear",
        "shift_px": [round(float(s), 5) for s in shift],
        "jpeg_quality": quality,
    }
    return result, params


# ---------------------------------------------------------------------------- items


@dataclass
class SynthItem:
    """One generated pair in memory: images as ``(H, W, 3)`` uint8 RGB, the mask as an
    ``(H, W)`` bool array (True = edited), and its manifest record (without paths)."""

    id: str
    original: np.ndarray
    edited: np.ndarray
    mask: np.ndarray
    record: dict[str, Any]


def _item_generators(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the edit and the noise of item ``index``."""
    edit_seq, noise_seq = np.random.SeedSequence([seed, index]).spawn(2)
    return np.random.Generator(np.random.PCG64(edit_seq)), np.random.Generator(
        np.random.PCG64(noise_seq)
    )


def _draw_size(rng: np.random.Generator) -> tuple[int, int]:
    low, high = DEFAULT_SIDE_RANGE
    steps = (high - low) // SIZE_STEP + 1
    return (
        low + SIZE_STEP * int(rng.integers(steps)),
        low + SIZE_STEP * int(rng.integers(steps)),
    )


def make_item(
    index: int,
    seed: int = 0,
    noise: float = 0.0,
    *,
    kinds: Sequence[str] = EDIT_KINDS,
    size: tuple[int, int] | None = None,
) -> SynthItem:
    """Generate item ``index`` of the set ``(seed, noise, kinds, size)`` in memory, as
    :func:`make_pairs` writes it. ``size`` is ``(width, height)``; ``None`` draws each
    side from :data:`DEFAULT_SIDE_RANGE`."""
    kinds = _check_kinds(kinds)
    noise = _check_noise(noise)
    size = _check_size(size)
    kind = kinds[index % len(kinds)]
    rng, noise_rng = _item_generators(seed, index)
    width, height = size if size is not None else _draw_size(rng)
    low, high = LOCAL_MASK_FRACTION
    for attempt in range(MAX_ATTEMPTS):
        photo = SCENE_PHOTOS[int(rng.integers(len(SCENE_PHOTOS)))]
        scene = _crop_scene(photo, (width, height), rng)
        edit = _EDITORS[kind](scene, rng, attempt >= _GENERIC_FROM_ATTEMPT)
        changed = np.any(edit.edited != scene.image, axis=2)
        changed_fraction = float(changed.mean())
        if kind == "global":
            if changed_fraction >= GLOBAL_MIN_CHANGED_FRACTION:
                mask = np.ones((height, width), bool)
                break
        elif low <= changed_fraction <= high:
            mask = changed
            break
    else:  # pragma: no cover - generic regions make this unreachable in practice
        raise RuntimeError(
            f"could not make a {kind!r} edit for item {index} (seed {seed}) "
            f"in {MAX_ATTEMPTS} attempts; last changed fraction {changed_fraction:.4f}"
        )

    edited, noise_params = resynthesis_noise(edit.edited, noise, noise_rng)
    item_id = f"{ID_PREFIX}{index:06d}"
    record: dict[str, Any] = {
        "id": item_id,
        "instruction": edit.instruction,
        "edit_type": kind,
        "original_concept": edit.original_concept,
        "edited_concept": edit.edited_concept,
        "action": kind,
        "noise": noise,
        "noise_params": noise_params,
        "source_photo": f"skimage.data.{photo.name}",
        "donor_photo": None if edit.donor_photo is None else f"skimage.data.{edit.donor_photo}",
        "width": width,
        "height": height,
        "mask_fraction": round(float(mask.mean()), 6),
        "details": edit.details,
        "seed": seed,
        "index": index,
        "attempts": attempt + 1,
    }
    return SynthItem(item_id, scene.image, edited, mask, record)


# -------------------------------------------------------------------------- writing


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    if isinstance(kinds, str):  # a lone string would be iterated letter by letter
        kinds = (kinds,)
    kinds = tuple(kinds)
    if not kinds:
        raise ConfigError("kinds is empty: give at least one of " + ", ".join(EDIT_KINDS))
    unknown = [kind for kind in kinds if kind not in EDIT_KINDS]
    if unknown:
        raise ConfigError(f"unknown edit kind(s) {unknown}; known: {', '.join(EDIT_KINDS)}")
    return kinds


def _check_noise(noise: float) -> float:
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise must be a finite number >= 0, got {noise}")
    return noise


def _check_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    width, height = (int(side) for side in size)
    if width < 32 or height < 32:
        raise ConfigError(f"size must be at least 32x32 pixels, got {width}x{height}")
    return width, height


#: zlib level of the written PNGs: 3 compresses nearly as well as the default 6 at about
#: half the time.
PNG_COMPRESS_LEVEL = 3


def make_pairs(
    out: Path,
    n: int,
    seed: int = 0,
    noise: float = 0.0,
    *,
    kinds: Sequence[str] = EDIT_KINDS,
    size: tuple[int, int] | None = None,
) -> Path:
    """Write ``n`` synthetic editing pairs under ``out`` and return the manifest's path.

    Files: ``out/original/<id>.png`` and ``out/edited/<id>.png`` (RGB), and
    ``out/mask/<id>.png`` (8-bit greyscale, 0 or 255, 255 = edited), ids
    ``synth_000000``, ``synth_000001``, ...; ``out/manifest.jsonl`` has one JSON object
    per item with ``id``, ``original``, ``edited``, ``mask`` (paths relative to
    ``out``), ``instruction``, ``edit_type`` (one of :data:`EDIT_KINDS`), the
    ground-truth parse ``original_concept`` / ``edited_concept`` / ``action`` (``"null"``
    for an absent concept, as the SIGMA parser writes it), ``noise`` and
    ``noise_params``, ``source_photo`` / ``donor_photo`` (``skimage.data`` names),
    ``width``, ``height``, ``mask_fraction``, ``details`` (colour, style, position),
    ``seed`` and ``index``.

    ``seed`` fixes everything: the same ``(n, seed, noise, kinds, size)`` gives
    byte-identical files, and item ``i`` is the same for any ``n > i``. ``noise`` is the
    re-synthesis noise level of the edited images (0 = none, 1 = strong but realistic;
    see :func:`resynthesis_noise`); it never changes the mask. ``kinds`` are cycled
    (item ``i`` has kind ``kinds[i % len(kinds)]``). ``size`` is ``(width, height)`` for
    every item; by default each side is drawn from :data:`DEFAULT_SIDE_RANGE`.
    Files of an earlier, larger run in ``out`` are left alone; only the manifest says
    which files belong to this run.
    """
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    kinds = _check_kinds(kinds)
    noise = _check_noise(noise)
    size = _check_size(size)
    out = Path(out)
    folders = {name: out / name for name in ("original", "edited", "mask")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)

    lines = []
    for index in range(n):
        item = make_item(index, seed, noise, kinds=kinds, size=size)
        mask = np.where(item.mask, 255, 0).astype(np.uint8)
        paths = {}
        for name, array in (("original", item.original), ("edited", item.edited), ("mask", mask)):
            relative = f"{name}/{item.id}.png"
            atomic_write_bytes(out / relative, encode_png(array, compress_level=PNG_COMPRESS_LEVEL))
            paths[name] = relative
        record = {"id": item.id, **paths, **{k: v for k, v in item.record.items() if k != "id"}}
        lines.append(json.dumps(record, ensure_ascii=False))

    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "".join(line + "\n" for line in lines))
    return manifest
