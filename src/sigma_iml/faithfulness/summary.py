"""A corpus's faithfulness in numbers: per source and per edit type, from run records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .analysis import RECORD_FIELD

UNKNOWN = "unknown"


def record_source(record: dict[str, Any]) -> str:
    """The corpus the record's pair came from: the one its dataset names, else the
    listing file of the record's ``source`` (``manifest.jsonl:12`` → ``manifest.jsonl``)."""
    named = (record.get(RECORD_FIELD) or {}).get("corpus")
    if named:
        return str(named)
    source = record.get("source")
    if not source:
        return UNKNOWN
    return str(source).rsplit(":", 1)[0] if ":" in str(source) else str(source)


def _group() -> dict[str, Any]:
    return {
        "n": 0,
        "faithful": 0,
        "side_effect": 0,
        "not_executed": 0,
        "_coverage": [],
        "_fraction": [],
    }


def _close(group: dict[str, Any]) -> dict[str, Any]:
    coverage, fraction = group.pop("_coverage"), group.pop("_fraction")
    n = group["n"]
    group["side_effect_rate"] = round(group["side_effect"] / n, 6) if n else 0.0
    group["not_executed_rate"] = round(group["not_executed"] / n, 6) if n else 0.0
    group["mean_intent_coverage"] = round(sum(coverage) / len(coverage), 6) if coverage else None
    group["mean_side_effect_fraction"] = (
        round(sum(fraction) / len(fraction), 6) if fraction else 0.0
    )
    return group


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts and rates of the ``ok`` records that carry a faithfulness field: overall,
    ``by_source`` (:func:`record_source`) and ``by_edit_type``. Each group has ``n``,
    ``faithful`` (neither flag), ``side_effect``, ``not_executed`` (counts and
    ``*_rate``), ``mean_intent_coverage`` (over pairs with an intent) and
    ``mean_side_effect_fraction``."""
    total = _group()
    by_source: dict[str, dict[str, Any]] = {}
    by_type: dict[str, dict[str, Any]] = {}
    for record in records:
        fields = record.get(RECORD_FIELD)
        if record.get("status") != "ok" or not isinstance(fields, dict):
            continue
        source = record_source(record)
        kind = str(fields.get("edit_type") or UNKNOWN)
        for group in (
            total,
            by_source.setdefault(source, _group()),
            by_type.setdefault(kind, _group()),
        ):
            group["n"] += 1
            group["side_effect"] += bool(fields.get("side_effect"))
            group["not_executed"] += bool(fields.get("not_executed"))
            group["faithful"] += not fields.get("side_effect") and not fields.get("not_executed")
            if fields.get("intent_coverage") is not None:
                group["_coverage"].append(float(fields["intent_coverage"]))
            group["_fraction"].append(float(fields.get("side_effect_fraction") or 0.0))
    return {
        **_close(total),
        "by_source": {k: _close(v) for k, v in sorted(by_source.items())},
        "by_edit_type": {k: _close(v) for k, v in sorted(by_type.items())},
    }
