"""Summary statistics over seeds, shared by both packages' reports."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval over seeds (NaN for fewer than two values)."""
    values = [float(v) for v in values]
    if len(values) < 2:
        return (values[0] if values else math.nan), math.nan
    from scipy import stats  # here: importing scipy.stats costs every command 0.7 s

    return statistics.fmean(values), float(stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values)
                                           / math.sqrt(len(values)))


def format_ci(mean: float, half: float, digits: int = 3) -> str:
    """"mean ± half-width" at ``digits`` decimals; the mean alone where the half-width is NaN (one seed)."""
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def format_mean_ci(values: Sequence[float], digits: int = 2) -> str:
    """:func:`format_ci` of :func:`mean_ci` over ``values``; "-" for none."""
    return format_ci(*mean_ci(values), digits) if values else "-"
