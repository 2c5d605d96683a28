"""Learning curves of run folders: test accuracy per epoch, one line per run group (mean over seeds, ± std band).

Drawn on matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fkdapp.runtime import WriteError, atomic_save_figure
from realdata.checkpoints import RunError
from realdata.report import RunGroup, collect


def curve(group: RunGroup, key: str = "test_acc") -> tuple[list[int], list[float], list[float]]:
    """Epochs, mean and sample std over the group's seeds of ``key`` (std 0 for one seed), at the epochs that logged
    it (with a validation split, ``test_acc`` at the last epoch only)."""
    epochs = [r["epoch"] for r in group.metrics[0] if key in r]
    per_epoch = list(zip(*([r[key] for r in rows if key in r] for rows in group.metrics), strict=True))
    means = [statistics.fmean(v) for v in per_epoch]
    stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in per_epoch]
    return epochs, means, stds


def kernel_curve(group: RunGroup) -> tuple[list[int], list[float]] | None:
    """Epochs and the mean over seeds and teachers of the logged kernel distance D(rho_S, rho_T), if logged."""
    rows = group.metrics[0]
    if not rows or "kernel_distance" not in rows[0]:
        return None
    per_epoch = zip(*([statistics.fmean(r["kernel_distance"]) for r in rows] for rows in group.metrics), strict=True)
    return [r["epoch"] for r in rows], [statistics.fmean(v) for v in per_epoch]


def plot_curves(paths: Iterable[str | Path], output: str | Path, title: str | None = None) -> list[RunGroup]:
    """Test accuracy per epoch of every finished run group under ``paths`` into ``output`` (format from its
    suffix), with a zoom on the second half (from 4 epochs on) and, where the runs logged it, the kernel distance
    between student and teachers on a fixed test batch; the legend gives each group's method, pair and number of
    seeds. Returns the groups drawn."""
    groups, unfinished = collect(paths)
    if not groups:
        more = f" and {len(unfinished) - 1} more" if len(unfinished) > 1 else ""
        what = f" (unfinished: {unfinished[0]}{more})" if unfinished else ""
        raise RunError(f"no finished run to plot{what}")
    curves = [curve(g) for g in groups]
    vals = [curve(g, "val_acc") if "val_acc" in g.metrics[0][0] else None for g in groups]
    kernels = [kernel_curve(g) for g in groups]
    last = max(len(epochs) for epochs, _, _ in curves)
    names = ["full", *(["tail"] if last >= 4 else []), *(["val"] if any(vals) else []),
             *(["kernel"] if any(kernels) else [])]
    rows = -(-len(groups) // 4)  # legend rows, below the panels
    fig = Figure(figsize=(5.5 * len(names), 4.8 + 0.22 * rows))
    FigureCanvasAgg(fig)
    axes = dict(zip(names, fig.subplots(1, len(names), squeeze=False)[0], strict=True))
    for i, (g, (epochs, mean, std), vc, kc) in enumerate(zip(groups, curves, vals, kernels, strict=True)):
        color, marker = f"C{i % 10}", "osD^v"[i // 10 % 5]  # beyond 10 groups the colours repeat: new markers
        style = "--" if "+" in g.pair else "-"  # ensembles dashed
        n = len(g.metrics)
        label = f"{g.label} ({n} seed{'s' if n != 1 else ''})"
        for name in ("full", "tail"):
            if name in axes:
                ax = axes[name]
                ax.plot(epochs, mean, style, color=color, marker=marker, ms=3, label=label)
                lo = [m - s for m, s in zip(mean, std, strict=True)]
                hi = [m + s for m, s in zip(mean, std, strict=True)]
                ax.fill_between(epochs, lo, hi, color=color, alpha=0.12, lw=0)
        if vc is not None:
            axes["val"].plot(vc[0], vc[1], style, color=color, marker=marker, ms=3, label=label)
        if kc is not None and "kernel" in axes:
            axes["kernel"].plot(*kc, style, color=color, marker=marker, ms=3, label=label)
    if "tail" in axes:
        axes["tail"].set_xlim(max(1, last // 2), last + 0.3)
        finals = [m for _, mean, _ in curves for m in mean[len(mean) // 2 :]]
        axes["tail"].set_ylim(min(finals) - 0.5, max(finals) + 0.3)
        axes["tail"].set_title("second half, zoomed")
    fig.suptitle(title or f"{groups[0].dataset}: test accuracy per epoch (mean ± std over seeds)")
    axes["full"].set_title("all epochs")
    for name, ax in axes.items():
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"kernel": "D(rho_S, rho_T) on a fixed test batch", "val": "validation accuracy (%)"}.get(
            name, "test accuracy (%)"))
        ax.grid(alpha=0.3)
    if "val" in axes:
        axes["val"].set_title("validation split (what selections use)")
    if "kernel" in axes:
        axes["kernel"].set_title("kernel alignment with the teachers (mean over teachers)")
    fig.legend(*axes["full"].get_legend_handles_labels(), loc="lower center", ncol=min(4, len(groups)), fontsize=7)
    fig.tight_layout(rect=(0, 0.22 * rows / (4.8 + 0.22 * rows) + 0.01, 1, 1))
    try:
        atomic_save_figure(fig, output, 130)
    except WriteError:  # a full disk, no permission: its own line
        raise
    except ValueError as e:  # an unknown file format
        raise RunError(f"cannot write {output}: {e}") from None
    return groups
