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

The package is split by concern: :mod:`.scenes` (the photos, their named objects, crops
and regions), :mod:`.edits` (the five edit kinds), :mod:`.noise` (re-synthesis noise) and
:mod:`.writing` (items, sets and their manifest).
"""

from .edits import EDIT_KINDS
from .noise import resynthesis_noise
from .writing import DEFAULT_SIDE_RANGE, LOCAL_MASK_FRACTION, SynthItem, make_item, make_pairs

__all__ = [
    "DEFAULT_SIDE_RANGE",
    "EDIT_KINDS",
    "LOCAL_MASK_FRACTION",
    "SynthItem",
    "make_item",
    "make_pairs",
    "resynthesis_noise",
]
