"""The record of a run: loss and validation history (``DIR/history.json``) and its
curves (``DIR/curves.png``).

Both files are written atomically (:mod:`sigma_iml.data.io`). The curves are drawn with
matplotlib's object API on an Agg canvas inside a local ``rc_context``: no pyplot, no
global backend or style change.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
CURVES_FILE = "curves.png"


class History:
    """Loss and validation curves of a run: ``DIR/history.json`` and ``DIR/curves.png``.

    ``steps`` holds one entry per ``log_every`` optimizer steps (mean of each logged
    term over them, and the learning rate); ``epochs`` one entry per validation."""

    def __init__(self, directory: Path, log_every: int, stage: str):
        self.directory = Path(directory)
        self.log_every = log_every
        self.stage = stage
        self.steps: list[dict[str, float]] = []
        self.epochs: list[dict[str, Any]] = []
        self._pending: dict[str, list[float]] = {}

    def load(self, upto_step: int) -> None:
        """Reload the history of an interrupted run, dropping entries past ``upto_step``
        (they will be recomputed identically)."""
        path = self.directory / HISTORY_FILE
        if not path.exists():
            return
        data = json.loads(path.read_text(encoding="utf-8"))
        self.steps = [s for s in data.get("steps", []) if s["step"] <= upto_step]
        self.epochs = [e for e in data.get("epochs", []) if e["step"] <= upto_step]

    def log_step(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self._pending.setdefault(key, []).append(float(value))
        if step % self.log_every == 0:
            self.flush_steps(step)

    def flush_steps(self, step: int) -> None:
        if not self._pending:
            return
        entry = {"step": step, **{k: float(np.mean(v)) for k, v in self._pending.items()}}
        self.steps.append(entry)
        self._pending = {}
        log.info("step %d: %s", step, {k: round(v, 5) for k, v in entry.items() if k != "step"})

    def log_epoch(self, entry: dict[str, Any]) -> None:
        self.epochs.append(entry)

    def document(self) -> dict[str, Any]:
        return {"stage": self.stage, "steps": self.steps, "epochs": self.epochs}

    def write(self) -> None:
        document = self.document()
        atomic_write_text(self.directory / HISTORY_FILE, json.dumps(document, indent=1) + "\n")
        plot_curves(document, self.directory / CURVES_FILE)


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
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return path
