"""Learning curves of run folders: test accuracy per epoch, one line per run group (mean over seeds, ± std band).

Drawn on matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from realdata.runs import RunError, RunGroup, collect


def curve(group: RunGroup, key: str = "test_acc") -> tuple[list[int], list[float], list[float]]:
    """Epochs, mean and sample std over the group's seeds of ``key`` (std 0 for one seed)."""
    epochs = [r["epoch"] for r in group.metrics[0]]
    per_epoch = list(zip(*([r[key] for r in rows] for rows in group.metrics), strict=True))
    means = [statistics.fmean(v) for v in per_epoch]
    stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in per_epoch]
    return epochs, means, stds


def plot_curves(paths: Iterable[str | Path], output: str | Path, title: str | None = None) -> list[RunGroup]:
    """Test accuracy per epoch of every finished run group under ``paths`` into ``output`` (format from its
    suffix); the legend gives each group's method, pair and number of seeds. Returns the groups drawn."""
    groups, _ = collect(paths)
    fig = Figure(figsize=(11, 4.8))
    FigureCanvasAgg(fig)
    full, tail = fig.subplots(1, 2)
    curves = [curve(g) for g in groups]
    for i, (g, (epochs, mean, std)) in enumerate(zip(groups, curves, strict=True)):
        color = f"C{i % 10}"
        style = "--" if "+" in g.pair else "-"  # ensembles dashed
        for ax in (full, tail):
            ax.plot(epochs, mean, style, color=color, marker="o", ms=3, label=f"{g.label} ({len(g.metrics)} seeds)")
            lo = [m - s for m, s in zip(mean, std, strict=True)]
            hi = [m + s for m, s in zip(mean, std, strict=True)]
            ax.fill_between(epochs, lo, hi, color=color, alpha=0.12, lw=0)
    last = max(len(epochs) for epochs, _, _ in curves)
    tail.set_xlim(max(1, last // 2), last + 0.3)
    finals = [m for _, mean, _ in curves for m in mean[len(mean) // 2 :]]
    tail.set_ylim(min(finals) - 0.5, max(finals) + 0.3)
    fig.suptitle(title or f"{groups[0].dataset}: test accuracy per epoch (mean ± std over seeds)")
    full.set_title("all epochs")
    tail.set_title("second half, zoomed")
    for ax in (full, tail):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    tail.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(output, dpi=130)
    except ValueError as e:  # an unknown file format
        raise RunError(f"cannot write {output}: {e}") from None
    return groups
