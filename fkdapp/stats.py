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


def format_mean_ci(values: Sequence[float], digits: int = 2) -> str:
    """"mean ± half-width" of :func:`mean_ci` at ``digits`` decimals; the mean alone for one value, "-" for none."""
    if not values:
        return "-"
    m, h = mean_ci(values)
    return f"{m:.{digits}f}" if math.isnan(h) else f"{m:.{digits}f} ± {h:.{digits}f}"
