"""The report's view of ``annotate --faithfulness`` (docs/faithfulness.md): a three-colour
overlay per pair and the corpus summary per source and edit type."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import load_image, load_mask
from ..errors import SigmaError
from . import thumbnails as thumbs

#: Overlay colours (RGB): intended change, side effect, intent not executed.
INTENDED = (40, 200, 70)
SIDE_EFFECT = (235, 50, 50)
NOT_EXECUTED = (40, 120, 255)
#: Gallery scores from the faithfulness field, in this order (the first sorts the gallery).
SCORES = ("side-effect fraction", "intent coverage")
OVERLAY_SUFFIX = "faithfulness.jpg"


def scores(record: dict[str, Any]) -> list[float | None]:
    fields = record.get("faithfulness")
    if not isinstance(fields, dict):
        return [None, None]
    return [fields.get("side_effect_fraction"), fields.get("intent_coverage")]


def three_colour_overlay(
    image: np.ndarray, intended: np.ndarray, side_effect: np.ndarray, not_executed: np.ndarray
) -> np.ndarray:
    """``image`` tinted green where the change was asked for, red where it was not,
    blue where the intent was not carried out."""
    out = image.astype(np.float32)
    for where, colour in (
        (intended, INTENDED),
        (side_effect, SIDE_EFFECT),
        (not_executed, NOT_EXECUTED),
    ):
        out[where] = (1 - thumbs.OVERLAY_ALPHA) * out[where] + thumbs.OVERLAY_ALPHA * np.array(
            colour
        )
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def make_overlay(
    record: dict[str, Any], edited_path: Path | None, run_dir: Path, target: Path
) -> bool:
    """Write ``target`` (the overlay thumbnail) once; False when a file is missing."""
    if target.is_file():
        return True
    fields = record.get("faithfulness")
    if not isinstance(fields, dict) or edited_path is None:
        return False
    try:
        edited = thumbs.shrink_rgb(load_image(edited_path))
        size = (edited.shape[1], edited.shape[0])
        masks = []
        for key in ("intended_mask", "side_effect_mask", "not_executed_mask"):
            value = fields.get(key)
            if not value or not (run_dir / value).is_file():
                masks.append(np.zeros(edited.shape[:2], bool))
                continue
            masks.append(thumbs.shrink_mask(load_mask(run_dir / value), size))
        thumbs.write_jpeg(target, three_colour_overlay(edited, *masks))
    except (SigmaError, OSError, ValueError):
        return False
    return True


def _rows(groups: dict[str, dict[str, Any]], label: str) -> str:
    head = (
        f"<tr><th>{escape(label)}</th><th>pairs</th><th>faithful</th><th>side effect</th>"
        "<th>not executed</th><th>mean intent coverage</th><th>mean side-effect fraction</th></tr>"
    )

    def pct(value: Any) -> str:
        return "–" if value is None else f"{100 * float(value):.1f}%"

    body = "".join(
        f"<tr><td>{escape(name)}</td><td>{g['n']}</td><td>{g['faithful']}</td>"
        f"<td>{g['side_effect']} ({pct(g['side_effect_rate'])})</td>"
        f"<td>{g['not_executed']} ({pct(g['not_executed_rate'])})</td>"
        f"<td>{pct(g['mean_intent_coverage'])}</td><td>{pct(g['mean_side_effect_fraction'])}</td></tr>"
        for name, g in groups.items()
    )
    return f"<table>{head}{body}</table>"


def summary_html(summary: dict[str, Any]) -> str:
    """The corpus summary (:func:`sigma_iml.faithfulness.summarise`) as HTML tables."""
    return (
        "<section id='faithfulness-section'><h2>Faithfulness</h2>"
        "<p class='legend note'>Faithfulness overlay:"
        f"<span style='background:rgb{INTENDED}'></span>intended change"
        f"<span style='background:rgb{SIDE_EFFECT}'></span>side effect"
        f"<span style='background:rgb{NOT_EXECUTED}'></span>intent not executed</p>"
        + _rows({"all": summary}, "corpus")
        + "<h3>Per source</h3>"
        + _rows(summary["by_source"], "source")
        + "<h3>Per edit type</h3>"
        + _rows(summary["by_edit_type"], "edit type")
        + "</section>"
    )
