"""Measurements on trained populations: views learned, errors by kind of data, ensembles. Plain data out."""

from __future__ import annotations

from typing import Any

import torch

from multiview.config import Config
from multiview.data import Samples


def views_learned(corr: torch.Tensor, cfg: Config) -> torch.Tensor:
    """View l of class j is learned when max_r <w_{j,r}, v_{j,l}> > view_threshold * varrho and >= view_ratio x
    the larger of the class's two correlations.  (..., k, 2) -> bool (..., k, 2)."""
    top = corr.amax(-1, keepdim=True)
    return (corr > cfg.view_threshold * cfg.varrho) & (corr >= cfg.view_ratio * top)


def threshold_text(cfg: Config) -> str:
    return (
        f"max_r <w_j,r, v_j,l> > {cfg.view_threshold:g} * varrho = {cfg.view_threshold * cfg.varrho:g} "
        f"and >= {cfg.view_ratio:g} x the larger of the class's two"
    )


def covered(learned: torch.Tensor, samples: Samples) -> torch.Tensor:
    """Whether each single-view sample's present view was learned.  (M, k, 2) -> bool (M, N_single)."""
    single = samples.view >= 0
    return learned[:, samples.y[single], samples.view[single]]


def _rate(mask: torch.Tensor, where: torch.Tensor) -> float | None:
    n = int(where.sum())
    return float((mask & where).sum()) / n if n else None


def error_report(
    logits_multi: torch.Tensor,
    logits_single: torch.Tensor,
    test_multi: Samples,
    test_single: Samples,
    cov: torch.Tensor,
) -> list[dict[str, Any]]:
    """Per learner (M of them): multi-view error, single-view failure overall and split by whether the present view
    was covered, and the uncovered fraction.  logits (M, N, k); cov bool (M, N_single)."""
    wrong_multi = logits_multi.argmax(-1) != test_multi.y
    wrong_single = logits_single.argmax(-1) != test_single.y
    out = []
    for i in range(logits_multi.shape[0]):
        c = cov[i]
        out.append(
            {
                "multi_view_error": float(wrong_multi[i].float().mean()),
                "single_view_failure": float(wrong_single[i].float().mean()),
                "failure_view_learned": _rate(wrong_single[i], c),
                "failure_view_not_learned": _rate(wrong_single[i], ~c),
                "uncovered_fraction": float((~c).float().mean()),
            }
        )
    return out


def train_accuracy(logits_train: torch.Tensor, y: torch.Tensor) -> list[float]:
    """(M, N, k), (N,) -> accuracy per network."""
    return (logits_train.argmax(-1) == y).float().mean(-1).tolist()


def ensemble_report(
    logits_multi: torch.Tensor,
    logits_single: torch.Tensor,
    test_multi: Samples,
    test_single: Samples,
    learned: torch.Tensor,
    sizes: list[int],
) -> list[dict[str, Any]]:
    """Ensembles of the first E networks (mean of logits), for each E in ``sizes``.

    A single-view point is covered by an ensemble when some member learned its view; ``predicted_uncovered`` is the
    product over members of each member's uncovered fraction (independent lotteries), to compare with the measured.
    """
    out = []
    for e in sizes:
        cov = covered(learned[:e].any(0, keepdim=True), test_single)
        rep = error_report(
            logits_multi[:e].mean(0, keepdim=True),
            logits_single[:e].mean(0, keepdim=True),
            test_multi,
            test_single,
            cov,
        )[0]
        single_unc = (~covered(learned[:e], test_single)).float().mean(-1)
        out.append({"size": e, **rep, "predicted_uncovered": float(single_unc.prod())})
    return out


def lottery_summary(learned: torch.Tensor) -> dict[str, Any]:
    """How (network, class) pairs split: exactly one view, both, none; and how often view 0 wins when one does."""
    n_views = learned.sum(-1)
    one = n_views == 1
    return {
        "pairs": int(n_views.numel()),
        "one_view": int(one.sum()),
        "both_views": int((n_views == 2).sum()),
        "no_view": int((n_views == 0).sum()),
        "first_view_wins": int((one & learned[..., 0]).sum()),
    }


def memorisation(learned: torch.Tensor, train_logits: torch.Tensor, train: Samples) -> dict[str, list[float | None]]:
    """How each network fits the single-view samples of its training set: the fraction classified correctly among
    those whose view it did not learn (fitted by memorisation, through noise: the theory's assumption) and among
    those whose view it learned. learned (M, k, 2), train_logits (M, N, k) -> per network lists (None: no such
    sample)."""
    single = train.view >= 0
    right = (train_logits.argmax(-1) == train.y)[:, single]  # (M, N_single)
    cov = covered(learned, train)
    return {"fit_view_not_learned": [_rate(right[i], ~cov[i]) for i in range(right.shape[0])],
            "fit_view_learned": [_rate(right[i], cov[i]) for i in range(right.shape[0])]}
