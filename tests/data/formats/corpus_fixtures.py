"""Tiny corpora for the parquet and WebDataset tests: images whose colours tell them
apart after a round trip, parquet tables in the documented schema of each preset's
corpus, and tar shards."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

SIZE = 16
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def colour(value: int) -> np.ndarray:
    """A 16x16 RGB image whose three channels tell images apart after a round trip."""
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    value %= 256
    image[..., 0] = value
    image[..., 1] = 255 - value
    image[4:8, 4:8, 2] = 200
    return image


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_array(row: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[row : row + 3, 2:9] = True
    return mask


def hf_image(data: bytes | None, path: str | None = "") -> dict:
    return {"bytes": data, "path": path}


def write_parquet(
    path: Path, columns: dict[str, pa.Array], row_group_size: int | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def magicbrush_file(path: Path, start: int = 0, n: int = 3) -> Path:
    """MagicBrush's schema with images in Hugging Face's ``{bytes, path}`` struct."""
    rows = range(start, start + n)
    return write_parquet(
        path,
        {
            "img_id": pa.array([str(1000 + i) for i in rows]),
            "turn_index": pa.array([1 + i % 2 for i in rows], pa.int32()),
            "source_img": pa.array([hf_image(png(colour(10 * i))) for i in rows], IMAGE_STRUCT),
            "mask_img": pa.array(
                [hf_image(png(mask_array(i).astype(np.uint8) * 255)) for i in rows], IMAGE_STRUCT
            ),
            "instruction": pa.array([f"make it {i}" for i in rows]),
            "target_img": pa.array([hf_image(png(colour(10 * i + 5))) for i in rows], IMAGE_STRUCT),
        },
    )


def preset_table(name: str) -> dict[str, pa.Array]:
    """One row in each corpus' documented schema, with decoy image columns holding an
    image the preset must not pick (AnyEdit's visual_input, a mask where none is mapped)."""
    original, edited, decoy = png(colour(20)), png(colour(200)), png(colour(120))
    image = lambda data: pa.array([hf_image(data)], IMAGE_STRUCT)  # noqa: E731
    text = lambda value: pa.array([value])  # noqa: E731
    if name == "magicbrush":
        return {
            "img_id": text("42"),
            "turn_index": pa.array([3], pa.int32()),
            "source_img": image(original),
            "mask_img": image(png(mask_array(0).astype(np.uint8) * 255)),
            "instruction": text("add a hat"),
            "target_img": image(edited),
        }
    if name == "anyedit":
        return {
            "image_id": text("coco_7"),
            "edit_instruction": text("add a hat"),
            "edit_type": text("add"),
            "image_file": image(original),
            "edited_file": image(edited),
            "visual_input": image(decoy),
            "input": text("a man"),
            "output": text("a man with a hat"),
        }
    if name == "omniedit":
        return {
            "omni_edit_id": text("task_obj_add_17"),
            "task": text("addition"),
            "src_img": image(original),
            "edited_img": image(edited),
            "edited_prompt_list": pa.array(
                [["add a hat", "put a hat on him"]], pa.list_(pa.string())
            ),
            "width": pa.array([SIZE]),
            "height": pa.array([SIZE]),
            "sc_score_1": pa.array([9]),
            "sc_score_2": pa.array([8]),
            "pq_score": pa.array([9]),
            "o_score": pa.array([8.5]),
        }
    if name == "crispedit":
        return {
            "input_img": image(original),
            "output_img": image(edited),
            "instruction": text("add a hat"),
            "type": text("add"),
        }
    if name == "promptfix":
        return {
            "input_img": image(original),
            "processed_img": image(edited),
            "instruction": text("add a hat"),
            "auxiliary_prompt": text("a photo of a man"),
            "task_id": text("object_addition"),
        }
    raise AssertionError(name)


EXPECTED_PRESET_IDS = {
    "magicbrush": "42-3",
    "anyedit": "corpus-0",
    "omniedit": "task_obj_add_17",
    "crispedit": "corpus-0",
    "promptfix": "corpus-0",
}


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
