"""Loss and validation curves as a PNG, drawn with matplotlib's object API on an Agg
canvas inside a local ``rc_context``: no pyplot, no global backend or style change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Keys of a history step entry that are not loss terms (rates, fractions).
_NOT_LOSSES = {"step", "lr", "confident_fraction", "qes_kept"}


def plot_curves(history: dict[str, Any], path: str | os.PathLike) -> Path:
    """Left: every logged loss term against the optimizer step (log scale). Right:
    validation F1 and IoU per epoch (when a validation set was given), else the mean
    training loss per epoch."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    steps = history.get("steps", [])
    epochs = history.get("epochs", [])
    with matplotlib.rc_context({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3}):
        figure = Figure(figsize=(10, 3.6), dpi=100)
        FigureCanvasAgg(figure)
        left, right = figure.subplots(1, 2)
        terms = sorted({k for s in steps for k in s} - _NOT_LOSSES)
        for term in terms:
            points = [(s["step"], s[term]) for s in steps if term in s and s[term] > 0]
            if points:
                xs, ys = zip(*points)
                left.plot(xs, ys, label=term, linewidth=1.2)
        left.set_xlabel("optimizer step")
        left.set_ylabel("loss (mean per log interval)")
        if terms and any(s.get(t, 0) > 0 for s in steps for t in terms):
            left.set_yscale("log")
        left.set_title(f"{history.get('stage', 'training')}: losses")
        if terms:
            left.legend(fontsize=7)
        validated = [e for e in epochs if e.get("val")]
        if validated:
            xs = [e["step"] for e in validated]
            for key in ("f1", "iou"):
                ys = [e["val"].get(key) for e in validated]
                right.plot(xs, [float("nan") if y is None else y for y in ys], "o-", label=key)
            right.set_ylim(0, 1)
            right.set_ylabel("validation score (per-image mean)")
            right.legend(fontsize=7)
            right.set_title("validation")
        else:
            xs = [e["step"] for e in epochs if e.get("train_loss") is not None]
            ys = [e["train_loss"] for e in epochs if e.get("train_loss") is not None]
            right.plot(xs, ys, "o-", label="train loss per epoch")
            right.set_title("no validation set: training loss per epoch")
            right.legend(fontsize=7)
        right.set_xlabel("optimizer step")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.tmp.png")
        figure.savefig(temporary, format="png")
        os.replace(temporary, path)
    return path
