"""Evaluation results as the paper's plain-text tables, and as strict JSON files."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dcme_keras.fileio import atomic_path


def _pct(value: float) -> str:
    """A percentage with one decimal, or ``n/a`` for nan."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"


def format_table(result: Mapping[str, Any], *, title: str | None = None) -> str:
    """Plain-text tables in the paper's layout.

    Per-class AP / AP50 rows and their mean (Tables I, II, IV); below them the
    classification accuracy (Table III) when ``result`` has ``"classification"``. A
    :func:`detection_accuracy` result prints as Table V.

    Args:
      result: what an evaluation function of this module returned.
      title: an optional first line.

    Returns:
      The table, lines joined by newlines.
    """
    lines = [title] if title else []
    if "per_class" in result:
        lines.append(f"{'class':<12}{'AP':>8}{'AP50%':>8}")
        for name, row in result["per_class"].items():
            lines.append(f"{name:<12}{_pct(row['AP']):>8}{_pct(row['AP50']):>8}")
        lines.append(f"{'mean':<12}{_pct(result['AP']):>8}{_pct(result['AP50']):>8}")
    if "classification" in result:
        table = result["classification"]
        lines += ["", f"{'class':<12}{'instances':>10}{'correct':>9}{'acc.%':>8}"]
        rows = [*table["per_class"].items(), ("total", table["total"])]
        for name, row in rows:
            lines.append(f"{name:<12}{row['instances']:>10}{row['correct']:>9}"
                         f"{_pct(row['accuracy']):>8}")
    if "per_threshold" in result:
        lines.append(f"{'threshold%':<12}{'detections':>11}{'acc.%':>8}"
                     f"   ({result['instances']} instances)")
        for row in result["per_threshold"]:
            lines.append(f"{100 * row['threshold']:<12g}{row['detections']:>11}"
                         f"{_pct(row['accuracy']):>8}")
    return "\n".join(lines)


def _nan_to_none(value: Any) -> Any:
    """Replace float nan by None, recursively, for strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def save_result(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write an evaluation result as strict JSON (``nan`` becomes ``null``), atomically.

    Args:
      result: what an evaluation function of this module returned.
      path: the ``.json`` file to write.

    Returns:
      ``path`` as a Path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_nan_to_none(result), indent=2, allow_nan=False) + "\n")
    return path
