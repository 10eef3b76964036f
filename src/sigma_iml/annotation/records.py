"""Turning one predicted pair into files and a record; shared by every engine.

:class:`ItemWriter` writes a pair's mask (and, on request, its probability map and
copies of images that came as bytes) atomically into the pair's shard folder, scores the
mask's quality, and returns the record line. It touches no shared state, so the
in-process engine runs it in a background thread and the Ray engine in CPU tasks; the
record itself is appended by one writer only (see the engines).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..data.images import EncodedImage, kept_encoding
from ..data.io import (
    atomic_write_bytes,
    encode_png,
    safe_filename,
    write_mask_png,
    write_probability_png,
)
from ..data.pair import Pair, PairRef
from ..data.run_layout import (
    EDITED_COPIES,
    MASKS,
    ORIGINAL_COPIES,
    PANELS,
    PROBABILITIES,
    SHARDS,
    shard_name,
)
from ..errors import SigmaError, is_run_fault
from ..evaluation.metrics import confusion_counts
from ..methods import Prediction
from .quality import quality_scores

#: Keys of ``Prediction.extras`` taken as the method's parse of the instruction, in order.
PARSED_INSTRUCTION_KEYS = ("parsed_instruction", "parse", "instruction_parse")


def jsonable(extras: dict[str, Any]) -> dict[str, Any]:
    """The extras that fit in a JSON record (arrays and other objects are left out)."""
    kept = {}
    for key, value in extras.items():
        if isinstance(value, np.ndarray):
            continue
        if isinstance(value, (np.floating, np.integer)):
            value = value.item()
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept


def failure_record(
    ref: PairRef,
    index: int,
    shard: int,
    error: BaseException | str,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    timings = {k: round(v, 6) for k, v in (timings or {}).items()}
    return {
        "id": ref.id,
        "index": index,
        "shard": shard_name(shard),
        "status": "failed",
        "mask": None,
        "source": ref.source,
        "seconds": round(sum(timings.values()), 6),
        "timings": timings,
        "error": str(error),
    }


class PairAnalysis(Protocol):
    """A per-pair step after prediction (``annotate --faithfulness``, docs/faithfulness.md):
    ``analyse`` returns the fields of record field ``name`` and bool masks by name, which
    the writer puts beside the pair's mask (folder ``<mask name>s`` of the shard) and
    names in the fields by their path relative to the run folder. A
    :class:`~sigma_iml.errors.SigmaError` it raises fails the pair with its message."""

    name: str

    def analyse(
        self, pair: Pair, prediction: Prediction, mask: np.ndarray
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...


@dataclass
class ItemWriter:
    """Writes one pair's outputs under ``out/shards/<shard>/`` and builds its record."""

    out: Path
    method: str
    save_probability: bool = False
    save_originals: bool = False
    #: Write the instruction branch's panel (the paper's Fig. 7) of methods that give one.
    save_intermediates: bool = False
    #: Per-pair steps whose fields and masks join the record (:class:`PairAnalysis`).
    analyses: tuple[PairAnalysis, ...] = ()

    def _relative(self, shard: int, folder: str, stem: str, suffix: str = ".png") -> str:
        return f"{SHARDS}/{shard_name(shard)}/{folder}/{stem}{suffix}"

    def _image_path(
        self, source: Any, array: np.ndarray, shard: int, folder: str, stem: str, save: bool
    ) -> str | None:
        """The absolute path of an input image on disk: the input file itself when it is
        one (inputs are never modified), else a copy in the shard when ``save``.

        A copy of an image that came as bytes keeps those bytes when they are a format
        every reader shows the same (:func:`~sigma_iml.data.images.kept_encoding`): a
        JPEG stays a JPEG, since re-encoding to PNG made a 50.5 KB JPEG 143.9 KB,
        terabytes over a million-pair corpus. Anything else becomes a PNG of the
        decoded pixels."""
        if isinstance(source, (str, os.PathLike)):
            return str(Path(source).resolve())
        if not save:
            return None
        data = source.data if isinstance(source, EncodedImage) else source
        suffix = kept_encoding(data) if isinstance(data, (bytes, bytearray)) else None
        copy = self.out / self._relative(shard, folder, stem, suffix or ".png")
        atomic_write_bytes(copy, bytes(data) if suffix else encode_png(array))
        return str(copy.resolve())

    def write(
        self,
        ref: PairRef,
        pair: Pair,
        prediction: Prediction,
        index: int,
        shard: int,
        timings: dict[str, float],
    ) -> dict[str, Any]:
        """Write the files and return the ``ok`` record. Raises ``OSError`` or
        ``ValueError`` when the prediction does not fit the pair or a write fails."""
        start = time.perf_counter()
        probability = np.asarray(prediction.probability)
        if probability.shape[:2] != pair.edited.shape[:2]:
            raise ValueError(
                f"method {self.method} returned a {probability.shape[1]}x{probability.shape[0]} "
                f"map for a {pair.size[0]}x{pair.size[1]} image"
            )
        stem = safe_filename(pair.id)
        mask = prediction.mask
        mask_relative = self._relative(shard, MASKS, stem)
        # Copies first, mask last, record after: a record never names a missing file.
        edited = self._image_path(ref.edited, pair.edited, shard, EDITED_COPIES, stem, True)
        original = None
        if ref.original is not None:
            original = self._image_path(
                ref.original, pair.original, shard, ORIGINAL_COPIES, stem, self.save_originals
            )
        probability_relative = None
        if self.save_probability:
            probability_relative = self._relative(shard, PROBABILITIES, stem)
            write_probability_png(self.out / probability_relative, probability)
        panel_relative = None
        instruction_result = prediction.extras.get("instruction_result")
        if self.save_intermediates and instruction_result is not None:
            from ..instruction.panel import save_instruction_panel

            panel_relative = self._relative(shard, PANELS, stem)
            save_instruction_panel(self.out / panel_relative, pair, instruction_result, mask)
        analysed: dict[str, dict[str, Any]] = {}
        for analysis in self.analyses:
            try:
                fields, masks = analysis.analyse(pair, prediction, mask)
            except SigmaError as err:
                if is_run_fault(err):
                    raise
                return failure_record(ref, index, shard, f"{analysis.name}: {err}", timings)
            for key, array in masks.items():
                fields[key] = self._relative(shard, f"{key}s", stem)
                write_mask_png(self.out / fields[key], array)
            analysed[analysis.name] = fields
        write_mask_png(self.out / mask_relative, mask)
        quality = quality_scores(probability)
        timings = {**timings, "write": time.perf_counter() - start}
        timings = {k: round(v, 6) for k, v in timings.items()}
        extras = jsonable(prediction.extras)
        parsed = next((extras[k] for k in PARSED_INSTRUCTION_KEYS if k in extras), None)
        record: dict[str, Any] = {
            "id": pair.id,
            "index": index,
            "shard": shard_name(shard),
            "status": "ok",
            "mask": mask_relative,
            "probability": probability_relative,
            "panel": panel_relative,
            "edited": edited,
            "original": original,
            "width": pair.size[0],
            "height": pair.size[1],
            "original_resized_from": list(pair.original_size) if pair.original_resized else None,
            "instruction": pair.instruction,
            "parsed_instruction": parsed,
            # Only the start of a longer instruction reached the parser (instruction/parser).
            "instruction_truncated": bool(
                getattr(instruction_result, "instruction_truncated", False)
            ),
            "method": self.method,
            # bf16 or fp32 per model stage, as it ran (methods with models say so).
            "precision": extras.get("precision"),
            "quality": quality,
            "source": ref.source,
            "seconds": round(sum(timings.values()), 6),
            "timings": timings,
            "error": None,
        }
        if pair.mask is not None:
            counts = confusion_counts(mask, pair.mask)
            record["gt"] = {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "tn": counts.tn}
        record.update(analysed)
        record["extras"] = extras
        return record
