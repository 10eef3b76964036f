"""Tiny fake copies of the five benchmark layouts, written on demand (torchgeo style).

Each ``make_<name>(root)`` writes a few 32x32 pairs in the published layout that
:mod:`sigma_iml.data.formats` reads, and returns what a correct reader must yield,
so the layout is documented by this code. Edited regions are known rectangles, so tests
can check decoded masks exactly.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from sigma_iml.data.pair import load_pair

SIZE = 32


def _photo(seed: int) -> np.ndarray:
    """A random mid-grey RGB image: no pixel is near white, so a "white paint" mask rule
    cannot pick up the photo itself."""
    return np.random.default_rng(seed).integers(40, 200, size=(SIZE, SIZE, 3), dtype=np.uint8)


def region(seed: int) -> np.ndarray:
    """The edited rectangle of pair ``seed`` as a bool mask."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    top, left = 2 + seed % 10, 3 + (seed * 7) % 12
    mask[top : top + 10, left : left + 12] = True
    return mask


def _edited(original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    edited = original.copy()
    edited[mask] = 255 - edited[mask]
    return edited


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def _mask_image(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


# ---------------------------------------------------------------- CocoGlide (TruFor)


def make_cocoglide(root: Path) -> list[dict]:
    """``table.csv`` (with a BOM, as released) + ``real/``, ``fake/``, ``mask/`` whose
    names differ per folder; rows 1-3 are good, row 4 escapes the folder, row 5 has an
    empty prompt."""
    root.mkdir(parents=True, exist_ok=True)
    items = [(1, "teddy bear", 563758), (2, "cake", 493334), (3, "dining table", 114871)]
    lines = ["real,fake,mask,prompt"]
    expected = []
    for row, label, coco_id in items:
        original = _photo(coco_id)
        mask = region(row)
        _save(root / "real" / f"{label}_{coco_id}.png", original)
        _save(root / "fake" / f"glide_inpainting_val2017_{coco_id}_up.png", _edited(original, mask))
        _save(root / "mask" / f"{label}_{coco_id}_mask.png", _mask_image(mask))
        lines.append(
            f"real/{label}_{coco_id}.png,fake/glide_inpainting_val2017_{coco_id}_up.png,"
            f"mask/{label}_{coco_id}_mask.png,{label}"
        )
        expected.append(
            {
                "id": f"cocoglide_{row:04d}_{coco_id}",
                "instruction": label,
                "mask": mask,
                "edited": root / "fake" / f"glide_inpainting_val2017_{coco_id}_up.png",
            }
        )
    lines.append("../outside.png,fake/glide_inpainting_val2017_7_up.png,mask/x_7_mask.png,dog")
    lines.append("real/y_8.png,fake/glide_inpainting_val2017_8_up.png,mask/y_8_mask.png,")
    (root / "table.csv").write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return expected


# -------------------------------------------------------------------------- AutoSplice


def make_autosplice(root: Path) -> list[dict]:
    """``Authentic/<id>.jpg``, ``Forged_JPEG{100,90,75}/<id>_<k>.jpg``,
    ``Mask/<id>_mask.png`` and ``Caption/<n>.json``; image 103 has no caption and
    ``badname.jpg`` does not follow the naming."""
    expected = []
    captions = {
        101: ("A red bus parked near the station", "bus", "tram"),
        102: ("Two dogs play in the park", "dogs", "cats"),
    }
    for image_id in (101, 102, 103):
        original = _photo(image_id)
        mask = region(image_id)
        _save(root / "Authentic" / f"{image_id}.jpg", original, quality=95)
        _save(root / "Mask" / f"{image_id}_mask.png", _mask_image(mask))
        for variant in (0, 1):
            for quality in (100, 90, 75):
                _save(
                    root / f"Forged_JPEG{quality}" / f"{image_id}_{variant}.jpg",
                    _edited(original, mask),
                    quality=quality,
                )
            if image_id in captions:
                caption, old, new = captions[image_id]
                expected.append(
                    {
                        "id": f"autosplice_q100_{image_id}_{variant}",
                        "instruction": caption.replace(old, new),
                        "mask": mask,
                    }
                )
    (root / "Caption").mkdir(parents=True, exist_ok=True)
    for n, (image_id, (caption, old, new)) in enumerate(captions.items()):
        record = {
            "id": image_id,
            "ori_caption": caption,
            "oriCaptionTerm": old,
            "userInputTerm": new,
        }
        (root / "Caption" / f"{n}.json").write_text(json.dumps(record), encoding="utf-8")
    _save(root / "Forged_JPEG100" / "badname.jpg", _photo(1))
    return expected


# ------------------------------------------------------------------------- MagicBrush

MAGICBRUSH_SCHEMA = pa.schema(
    [
        ("img_id", pa.string()),
        ("turn_index", pa.int32()),
        ("source_img", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("mask_img", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("instruction", pa.string()),
        ("target_img", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    ]
)


def magicbrush_brush_mask(original: np.ndarray, mask: np.ndarray, style: str) -> bytes:
    """A ``mask_img`` cell: ``"painted"`` = the photo with the brushed region white (RGB),
    ``"alpha"`` = DALL-E 2 style RGBA, transparent where brushed."""
    if style == "painted":
        painted = original.copy()
        painted[mask] = 255
        return _png(painted)
    rgba = np.dstack([original, np.where(mask, 0, 255).astype(np.uint8)])
    return _png(rgba, mode="RGBA")


def magicbrush_rows(
    count: int, start: int = 0, style: str = "painted"
) -> tuple[list[dict], list[dict]]:
    rows, expected = [], []
    for n in range(start, start + count):
        original = _photo(n)
        mask = region(n)
        image_id, turn = str(300000 + n // 2), 1 + n % 2
        rows.append(
            {
                "img_id": image_id,
                "turn_index": turn,
                "source_img": {"bytes": _png(original), "path": None},
                "mask_img": {"bytes": magicbrush_brush_mask(original, mask, style), "path": None},
                "instruction": f"make region {n} inverted",
                "target_img": {"bytes": _png(_edited(original, mask)), "path": None},
            }
        )
        expected.append(
            {
                "id": f"magicbrush_{image_id}_t{turn}",
                "instruction": f"make region {n} inverted",
                "mask": mask,
            }
        )
    return rows, expected


def make_magicbrush(root: Path, count: int = 4, row_group_size: int | None = None) -> list[dict]:
    """``data/dev-00000-of-00002-<hash>.parquet`` (photo painted white) and
    ``data/dev-00001-...`` (RGBA, transparent) with Hugging Face ``Image`` structs, and a
    ``train-`` shard that ``split="dev"`` must skip."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    half = count // 2
    first, expected_first = magicbrush_rows(half, 0, "painted")
    second, expected_second = magicbrush_rows(count - half, half, "alpha")
    for name, rows in (
        ("dev-00000-of-00002-aaaa.parquet", first),
        ("dev-00001-of-00002-bbbb.parquet", second),
    ):
        table = pa.Table.from_pylist(rows, schema=MAGICBRUSH_SCHEMA)
        pq.write_table(table, data / name, row_group_size=row_group_size)
    train_rows, _ = magicbrush_rows(1, 1000)
    pq.write_table(
        pa.Table.from_pylist(train_rows, schema=MAGICBRUSH_SCHEMA),
        data / "train-00000-of-00001-cccc.parquet",
    )
    return expected_first + expected_second


def make_magicbrush_malformed(root: Path) -> Path:
    """One shard whose row 1 has no target image and row 2 an empty instruction."""
    rows, _ = magicbrush_rows(3, 50)
    rows[1]["target_img"] = None
    rows[2]["instruction"] = ""
    root.mkdir(parents=True, exist_ok=True)
    file = root / "dev-00000-of-00001-dddd.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=MAGICBRUSH_SCHEMA), file)
    return file


# -------------------------------------------------------------------------- DEAL-300K


def make_deal300k(root: Path) -> list[dict]:
    """Assumed extraction of ``test.zip``/``label.zip`` plus the repository's
    ``instructions/``: ``test/<coco id>.jpg`` (original), ``test/<coco id>_qwen<n>.jpg``
    (edited), ``label/<coco id>_qwen<n>.png`` (mask). COCO 24 has no instruction."""
    instructions = {"120": [], "180": []}
    expected = []
    for coco_id, checkpoint in ((9, "120"), (459, "180"), (24, "120")):
        name = f"{coco_id:012d}"
        original = _photo(coco_id)
        mask = region(coco_id)
        _save(root / "test" / f"{name}.jpg", original, quality=95)
        _save(root / "test" / f"{name}_qwen{checkpoint}.jpg", _edited(original, mask), quality=95)
        _save(root / "label" / f"{name}_qwen{checkpoint}.png", _mask_image(mask))
        if coco_id != 24:
            text = f"let object {coco_id} be blue"
            instructions[checkpoint].append({"image_name": f"{name}.jpg", "generated_text": text})
            expected.append(
                {"id": f"deal300k_test_{name}_qwen{checkpoint}", "instruction": text, "mask": mask}
            )
    (root / "instructions").mkdir(parents=True, exist_ok=True)
    for checkpoint, records in instructions.items():
        file = root / "instructions" / f"checkpoint-{checkpoint}_test_results.json"
        file.write_text(json.dumps(records, indent=4), encoding="utf-8")
    # another split's instructions must not leak into the test split
    (root / "instructions" / "checkpoint-120_dev_results.json").write_text(
        json.dumps([{"image_name": f"{24:012d}.jpg", "generated_text": "wrong split"}]),
        encoding="utf-8",
    )
    return expected


# ---------------------------------------------------------------------------- OpenSDI

OPENSDI_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("mask", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("label", pa.int64()),
    ]
)


def make_opensdi(root: Path) -> list[dict]:
    """``data/sd15-00000-of-00001.parquet``: local edits ``partial/sd15/fake/<n>.jpg``
    with their real photos ``partial/sd15/real/<n>.jpg`` (stored after the fakes, so
    originals are looked up out of order), one edit without a real photo, one fully
    generated image and one fake without a mask."""
    rows, expected = [], []
    reals = []
    for n in (651821, 651453):
        original = _photo(n)
        mask = region(n)
        stem = f"{n:09d}"
        rows.append(
            {
                "key": f"partial/sd15/fake/{stem}.jpg",
                "image": {"bytes": _png(_edited(original, mask)), "path": None},
                "mask": {"bytes": _png(_mask_image(mask)), "path": None},
                "label": 1,
            }
        )
        reals.append(
            {
                "key": f"partial/sd15/real/{stem}.jpg",
                "image": {"bytes": _png(original), "path": None},
                "mask": None,
                "label": 0,
            }
        )
        expected.append(
            {"id": f"opensdi_partial_sd15_fake_{stem}", "mask": mask, "original": original}
        )
    lonely = region(7)
    rows.append(
        {
            "key": "partial/sd15/fake/000000007.jpg",
            "image": {"bytes": _png(_edited(_photo(7), lonely)), "path": None},
            "mask": {"bytes": _png(_mask_image(lonely)), "path": None},
            "label": 1,
        }
    )
    expected.append({"id": "opensdi_partial_sd15_fake_000000007", "mask": lonely, "original": None})
    full = np.ones((SIZE, SIZE), dtype=bool)
    rows.append(
        {
            "key": "full/sd15/fake/000000008.jpg",
            "image": {"bytes": _png(_photo(8)), "path": None},
            "mask": {"bytes": _png(_mask_image(full)), "path": None},
            "label": 1,
        }
    )
    rows.append(
        {
            "key": "partial/sd15/fake/000000009.jpg",
            "image": {"bytes": _png(_photo(9)), "path": None},
            "mask": None,
            "label": 1,
        }
    )
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pylist(rows + reals, schema=OPENSDI_SCHEMA),
        data / "sd15-00000-of-00001.parquet",
        row_group_size=2,
    )
    return expected


BUILDERS = {
    "cocoglide": make_cocoglide,
    "autosplice": make_autosplice,
    "magicbrush": make_magicbrush,
    "deal300k": make_deal300k,
    "opensdi": make_opensdi,
}


def valid(refs):
    """The refs without a problem."""
    return [r for r in refs if r.problem is None]


def check_decoded(refs, expected, *, require_original=True):
    """Every ``expected`` item is among ``refs`` and decodes to its mask (and instruction)."""
    by_id = {r.id: r for r in refs}
    assert set(by_id) >= {e["id"] for e in expected}
    for item in expected:
        pair = load_pair(by_id[item["id"]], require_original=require_original)
        assert pair.size == (SIZE, SIZE)
        np.testing.assert_array_equal(pair.mask, item["mask"])
        if "instruction" in item:
            assert pair.instruction == item["instruction"]
