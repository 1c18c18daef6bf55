"""Fitted term weights (`authsvc risk fit`) as a small JSON file the live engine loads: arithmetic only.

Format (``format`` = ``authsvc-risk-weights/1``)::

    {"format": "authsvc-risk-weights/1",
     "terms": {"prior": 0.61, "ip_lr": 0.93, "ua_lr": 0.88, "hour": 0.4, "travel": 1.1, "v:ip_failures": 1.2, ...},
     "offset": -2.31,                      # added to Σ w·term (places the step-up threshold, see fit.py)
     "step_up_threshold": -1.0, "deny_threshold": 7.0,
     "fitted": {...}}                      # provenance only: data, windows, labels, measured log-loss; not read

An account with history then scores ``offset + Σ_k w_k · x_k`` over ``RiskEngine.terms()`` (a flag term, e.g.
``travel``, counts 1 when present; a term without a weight keeps weight 1 on its v2 value); first logins keep the
v2 score. No scikit-learn here: fitting is offline (``evaluation/fit.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

from .config import RiskConfig

__all__ = ["FORMAT", "WeightsError", "load_weights", "weights_config", "write_weights"]

FORMAT = "authsvc-risk-weights/1"
# prior, ip_lr, ua_lr, lr_clip, hour, travel, no_history, trusted_device, breached_password, v:<velocity code>
_TERM_NAME = re.compile(r"^(?:[a-z_]{2,32}|v:[a-z_]{2,32})$")
_MAX_BYTES = 64 * 1024


class WeightsError(ValueError):
    """The weights file is missing, not JSON, or not in the expected shape; the message says which."""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WeightsError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def weights_config(doc: Mapping[str, Any], base: RiskConfig | None = None) -> RiskConfig:
    """A RiskConfig with the document's weights, offset and thresholds (other fields from ``base``)."""
    if not isinstance(doc, Mapping):
        raise WeightsError("expected a JSON object")
    if doc.get("format") != FORMAT:
        raise WeightsError(f"format: expected {FORMAT!r}, got {doc.get('format')!r}")
    terms = doc.get("terms")
    if not isinstance(terms, Mapping) or not terms:
        raise WeightsError("terms: expected a non-empty object of term name → weight")
    weights = []
    for name, w in terms.items():
        if not isinstance(name, str) or not _TERM_NAME.match(name):
            raise WeightsError(f"terms: {name!r} is not a term name")
        weights.append((name, _number(w, f"terms.{name}")))
    offset = _number(doc.get("offset", 0.0), "offset")
    step = _number(doc.get("step_up_threshold"), "step_up_threshold")
    deny = _number(doc.get("deny_threshold"), "deny_threshold")
    try:
        return dataclasses.replace(base or RiskConfig(), term_weights=tuple(sorted(weights)), term_offset=offset,
                                   step_up_threshold=step, deny_threshold=deny)
    except ValueError as exc:  # RiskConfig's own checks (deny ≥ step-up)
        raise WeightsError(str(exc)) from None


def load_weights(path: str | Path, base: RiskConfig | None = None) -> RiskConfig:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > _MAX_BYTES:
        raise WeightsError(f"{path}: larger than {_MAX_BYTES} bytes; not a weights file")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not JSON ({exc})") from None
    try:
        return weights_config(doc, base)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None


def write_weights(path: str | Path, terms: Mapping[str, float], offset: float, step_up_threshold: float,
                  deny_threshold: float, fitted: Mapping[str, Any]) -> dict[str, Any]:
    doc = {"format": FORMAT, "terms": {k: round(float(v), 6) for k, v in sorted(terms.items())},
           "offset": round(float(offset), 6), "step_up_threshold": float(step_up_threshold),
           "deny_threshold": float(deny_threshold), "fitted": dict(fitted)}
    weights_config(doc)  # never write a file the engine would refuse
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    return doc
