"""Bjøntegaard delta rate and delta quality between two rate–quality curves.

BD-rate: the average difference of log-rate over the overlapping quality interval, as a percentage
rate change of `test` against `anchor` (negative = test needs fewer bits). BD-quality: the average
quality difference over the overlapping log-rate interval. Two interpolations:
  - "pchip": piecewise cubic Hermite (monotone) through the points, as in current JVET/MPEG tools;
  - "cubic": a least-squares cubic polynomial, Bjøntegaard's original VCEG-M33 method.
Curves need at least 4 points, overlapping ranges and distinct quality values; a curve whose quality
does not rise with rate (common for mAP at low rates) is interpolated as given, with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.interpolate import PchipInterpolator

from vcmlab.errors import InputError

Method = Literal["pchip", "cubic"]


class BDRateError(InputError):
    """The two curves do not allow a Bjøntegaard delta (too few points, no overlap, ...)."""


def _prepare(rate: Sequence[float], quality: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    r, q = np.asarray(rate, dtype=float), np.asarray(quality, dtype=float)
    if r.shape != q.shape or r.ndim != 1:
        raise BDRateError(f"{name}: rate and quality must be 1-D and of equal length")
    if len(r) < 4:
        raise BDRateError(f"{name}: {len(r)} points; BD needs at least 4 per curve")
    if not np.all(np.isfinite(r)) or not np.all(np.isfinite(q)) or np.any(r <= 0):
        raise BDRateError(f"{name}: rates must be positive and all values finite")
    order = np.argsort(r)
    r, q = r[order], q[order]
    if np.any(np.diff(q) <= 0):
        warnings.warn(
            f"{name}: quality does not increase strictly with rate; the BD value is less reliable", stacklevel=3
        )
    return np.log10(r), q


def _average(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: Method, name: str) -> float:
    """Mean of y(x) over [lo, hi] under the chosen interpolation of the points (x, y)."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    if np.any(np.diff(x) == 0):
        raise BDRateError(f"{name}: repeated values {x[np.nonzero(np.diff(x) == 0)[0][0]]} cannot be interpolated")
    if method == "pchip":
        return float(PchipInterpolator(x, y).integrate(lo, hi) / (hi - lo))
    if method == "cubic":
        poly = np.polyint(np.polyfit(x, y, 3))
        return float((np.polyval(poly, hi) - np.polyval(poly, lo)) / (hi - lo))
    raise BDRateError(f"unknown method {method!r}; use pchip or cubic")


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if hi <= lo:
        raise BDRateError(
            f"the curves' {what} ranges do not overlap ([{a.min():g}, {a.max():g}] vs [{b.min():g}, {b.max():g}])"
        )
    return lo, hi


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality, method: Method = "pchip") -> float:
    """Average rate change of test vs anchor at equal quality, in percent."""
    ar, aq = _prepare(anchor_rate, anchor_quality, "anchor")
    tr, tq = _prepare(test_rate, test_quality, "test")
    lo, hi = _overlap(aq, tq, "quality")
    diff = _average(tq, tr, lo, hi, method, "test") - _average(aq, ar, lo, hi, method, "anchor")
    return (10.0**diff - 1.0) * 100.0


def bd_quality(anchor_rate, anchor_quality, test_rate, test_quality, method: Method = "pchip") -> float:
    """Average quality change of test vs anchor at equal rate (e.g. BD-PSNR in dB)."""
    ar, aq = _prepare(anchor_rate, anchor_quality, "anchor")
    tr, tq = _prepare(test_rate, test_quality, "test")
    lo, hi = _overlap(ar, tr, "log-rate")
    return _average(tr, tq, lo, hi, method, "test") - _average(ar, aq, lo, hi, method, "anchor")
