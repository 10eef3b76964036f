"""Decoding: EXIF orientation, colour modes, IMDL-BenCo's mask rule, bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sigma_iml.data.images import EncodedImage, load_image, load_mask
from sigma_iml.errors import ImageDecodeError


def _png_bytes(image: Image.Image, format: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **kwargs)
    return buffer.getvalue()


def test_exif_orientation_is_applied(tmp_path):
    # A 30x20 image whose EXIF says "rotate 90° clockwise" (orientation 6) shows as 20x30.
    array = np.zeros((20, 30, 3), dtype=np.uint8)
    array[:, :5] = 255  # a white band on the left edge of the stored pixels
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    decoded = load_image(path)
    assert decoded.shape == (30, 20, 3)
    # After a 90° clockwise turn the stored left edge is on top.
    assert decoded[:5].mean() > 200 and decoded[-5:].mean() < 50


@pytest.mark.parametrize(
    "mode, value, expected",
    [
        ("L", 200, (200, 200, 200)),
        ("1", 1, (255, 255, 255)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("RGB", (1, 2, 3), (1, 2, 3)),
    ],
)
def test_modes_convert_to_rgb(mode, value, expected):
    image = Image.new(mode, (4, 3), value)
    decoded = load_image(EncodedImage(_png_bytes(image, "TIFF" if mode == "CMYK" else "PNG"), "x"))
    assert decoded.dtype == np.uint8 and decoded.shape == (3, 4, 3)
    assert tuple(int(v) for v in decoded[0, 0]) == expected


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    decoded = load_image(_png_bytes(image))
    assert decoded[0, :, 0].tolist() == [0, 128, 255]


def test_transparency_is_composited_over_white():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    decoded = load_image(_png_bytes(rgba))
    assert decoded[0, 0].tolist() == [255, 255, 255]
    assert decoded[0, 1].tolist() == [10, 20, 30]
    la = Image.new("LA", (1, 1), (0, 0))
    assert load_image(_png_bytes(la))[0, 0].tolist() == [255, 255, 255]
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    decoded = load_image(_png_bytes(palette, transparency=0))
    assert decoded[0, 0].tolist() == [255, 255, 255] and decoded[0, 1].tolist() == [200, 100, 50]


def test_arrays_are_accepted():
    assert load_image(np.full((2, 3), 0.5, dtype=np.float32))[0, 0].tolist() == [128, 128, 128]
    assert load_image(np.zeros((2, 3, 1), dtype=np.uint8)).shape == (2, 3, 3)
    with pytest.raises(ImageDecodeError, match="not an image"):
        load_image(np.zeros((2, 3, 5), dtype=np.uint8))


def test_mask_rule_is_rgb_mean_above_half():
    # (255, 255, 0) has mean 170 -> edited; (255, 0, 0) has mean 85 -> not edited.
    array = np.array(
        [[[255, 255, 0], [255, 0, 0], [128, 128, 128], [127, 127, 127]]], dtype=np.uint8
    )
    assert load_mask(_png_bytes(Image.fromarray(array))).tolist() == [[True, False, True, False]]


def _imdlbenco_mask(data: bytes) -> np.ndarray:
    """IMDL-BenCo's reading of a mask: ``pil_loader`` (``convert("RGB")``) then the mean of
    the channels above 127.5 (``AbstractDataset.__getitem__``)."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return np.mean(rgb, axis=2) > 127.5


def _transparent_masks() -> dict[str, bytes]:
    """Masks whose background is transparent black and whose edit is opaque white (two
    pixels: background, edit), in every mode with transparency."""
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 255, 255, 255))
    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (255, 255))
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.putpixel((1, 0), 1)
    return {
        "RGBA": _png_bytes(rgba),
        "LA": _png_bytes(la),
        "P": _png_bytes(palette, transparency=0),
    }


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_mask_background_is_unedited_as_in_imdlbenco(mode):
    """Compositing over white (what a viewer shows) would mark the whole transparent
    background edited; IMDL-BenCo ignores alpha, and so do we."""
    data = _transparent_masks()[mode]
    assert load_mask(data).tolist() == [[False, True]]
    np.testing.assert_array_equal(load_mask(data), _imdlbenco_mask(data))


def test_mask_array_with_alpha_ignores_alpha():
    array = np.array([[[0, 0, 0, 0], [255, 255, 255, 255], [255, 255, 255, 0]]], dtype=np.uint8)
    assert load_mask(array).tolist() == [[False, True, True]]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ImageDecodeError, match="file not found") as info:
        load_image(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)


def test_corrupt_bytes_are_refused():
    with pytest.raises(ImageDecodeError, match="not a recognised image") as info:
        load_image(EncodedImage(b"this is not an image at all", "row 7 column source_img"))
    assert "row 7 column source_img" in str(info.value)


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_truncated_files_are_refused(tmp_path, format):
    rng = np.random.default_rng(0)
    data = _png_bytes(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), format)
    path = tmp_path / f"cut.{format.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated or corrupt") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_decompression_bomb_is_refused(tmp_path):
    # 10000 x 9000 bilevel pixels compress to a few kB but would decode to 90 megapixels,
    # just above Pillow's default limit (where Pillow itself only warns).
    path = tmp_path / "bomb.png"
    Image.new("1", (10000, 9000)).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(path)
    # A caller that trusts its data can raise the limit.
    assert load_image(path, max_pixels=100_000_000).shape == (9000, 10000, 3)
    with pytest.raises(ImageDecodeError, match="exceeds the limit of 1000 pixels"):
        load_image(_png_bytes(Image.new("L", (40, 40))), max_pixels=1000)
