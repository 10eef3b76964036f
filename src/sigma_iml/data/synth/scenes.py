"""The scenes of synthetic pairs: the bundled photos and their named objects, random
crops of them, and object-shaped regions to edit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from ...errors import ConfigError


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


def _objects(table: str) -> tuple[SceneObject, ...]:
    """The objects of a table with one per line: ``concept x0 y0 x1 y1`` (the concept may
    be several words)."""
    objects = []
    for line in table.strip().splitlines():
        *words, x0, y0, x1, y1 = line.split()
        objects.append(SceneObject(" ".join(words), (float(x0), float(y0), float(x1), float(y1))))
    return tuple(objects)


#: Photos used as the scene being edited and as donors of pasted objects, in the order
#: items draw them. Boxes were read off the photos by eye; a blob drawn inside one covers
#: most of the object.
SCENE_PHOTOS: tuple[SourcePhoto, ...] = (
    SourcePhoto(
        "astronaut",
        _objects(
            """
            astronaut            0.06 0.05 0.72 1.00
            face                 0.34 0.15 0.56 0.40
            helmet               0.55 0.67 1.00 1.00
            flag                 0.00 0.00 0.17 0.45
            space shuttle model  0.71 0.00 0.91 0.55
            mission patch        0.26 0.67 0.41 0.83
            """
        ),
    ),
    SourcePhoto(
        "chelsea",
        _objects(
            """
            cat                  0.08 0.02 0.84 1.00
            cat's eye            0.29 0.27 0.47 0.50
            cat's nose           0.48 0.70 0.66 0.89
            """
        ),
    ),
    SourcePhoto(
        "coffee",
        _objects(
            """
            coffee cup           0.28 0.04 0.70 0.76
            saucer               0.12 0.20 0.80 0.97
            spoon                0.53 0.16 0.70 0.82
            """
        ),
    ),
    SourcePhoto(
        "rocket",
        _objects(
            """
            rocket               0.46 0.29 0.54 0.97
            launch tower         0.00 0.00 0.14 1.00
            lightning mast       0.67 0.28 0.73 1.00
            """
        ),
    ),
    SourcePhoto(
        "stereo_motorcycle",
        _objects(
            """
            motorcycle           0.13 0.17 0.93 0.90
            front wheel          0.69 0.58 0.93 0.90
            rear wheel           0.16 0.46 0.38 0.80
            fuel tank            0.44 0.31 0.66 0.50
            wooden bench         0.06 0.20 0.38 0.56
            cardboard box        0.82 0.35 0.94 0.56
            """
        ),
    ),
    SourcePhoto(
        "camera",
        _objects(
            """
            man                  0.00 0.12 0.66 1.00
            video camera         0.50 0.26 0.64 0.38
            tripod               0.44 0.35 0.80 1.00
            tower                0.79 0.21 0.88 0.45
            """
        ),
    ),
    SourcePhoto(
        "coins",
        _objects(
            """
            coin                 0.04 0.08 0.19 0.25
            coin                 0.33 0.08 0.48 0.24
            coin                 0.81 0.03 0.97 0.25
            coin                 0.81 0.50 0.98 0.74
            coin                 0.46 0.54 0.61 0.72
            """
        ),
    ),
    SourcePhoto(
        "immunohistochemistry",
        _objects("gland 0.49 0.59 0.76 0.95"),
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


# --------------------------------------------------------------------------- regions


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


# --------------------------------------------------------------------------- scenes


@dataclass
class Scene:
    """The original image of an item and the named objects visible in it (boxes in
    its pixel coordinates)."""

    photo: SourcePhoto
    image: np.ndarray
    objects: list[tuple[str, tuple[float, float, float, float]]]


def crop_scene(photo: SourcePhoto, size: tuple[int, int], rng: np.random.Generator) -> Scene:
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
    return Scene(photo, image, visible)


def pick_region(
    scene: Scene, rng: np.random.Generator, *, generic: bool
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


def donor_object(
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


def cut_object(
    pixels: np.ndarray,
    box: tuple[float, float, float, float],
    scale: float,
    scene_shape: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The object in ``box`` of ``pixels`` resized by ``scale``, but to at most 90% of
    either side of a scene of ``scene_shape`` (height, width) and at least 8 pixels, and
    its object-shaped blob there: ``(patch, region)``."""
    height, width = scene_shape
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    scale = min(scale, 0.9 * width / box_w, 0.9 * height / box_h)
    out_w, out_h = max(8, int(round(box_w * scale))), max(8, int(round(box_h * scale)))
    x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
    x1, y1 = int(math.ceil(box[2])), int(math.ceil(box[3]))
    patch = cv2.resize(pixels[y0:y1, x0:x1], (out_w, out_h), interpolation=cv2.INTER_AREA)
    region = _blob_in_box((out_h, out_w), (0.0, 0.0, float(out_w), float(out_h)), rng)
    return patch, region
