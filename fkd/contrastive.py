"""Contrastive objectives, as pure functions: CRD's NCE loss over a memory of negatives."""

from __future__ import annotations

import torch

from fkd._checks import upcast


def crd_loss(
    scores_s: torch.Tensor,
    scores_t: torch.Tensor,
    z_s: float,
    z_t: float,
    n_data: int,
    temperature: float = 0.07,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Contrastive representation distillation (Tian et al., ICLR 2020): the two-sided NCE loss.  -> ().

    ``scores_s`` (B, K+1): the inner products of the student's L2-normalised embedding of each sample with the
    teacher's memory rows at the sample's own index (first) and at its K negatives; ``scores_t`` the teacher's
    embedding against the student's memory at the same indices. Each side's probabilities are
    p = exp(score / T) / z (z_s, z_t: the normalisation constants), its NCE loss with the uniform noise
    distribution 1 / n_data is -(log p_0 / (p_0 + K / n_data) + sum_j log (K / n_data) / (p_j + K / n_data)),
    averaged over the batch, and the loss is the sum of the two sides.
    """
    if scores_s.ndim != 2 or scores_s.shape != scores_t.shape or scores_s.shape[1] < 2:
        raise ValueError(f"crd_loss needs two (B, K+1) score tensors with K >= 1, got {tuple(scores_s.shape)} and "
                         f"{tuple(scores_t.shape)}")
    noise = (scores_s.shape[1] - 1) / n_data

    def nce(scores: torch.Tensor, z: float) -> torch.Tensor:
        p = torch.exp(upcast(scores) / temperature) / z
        pos = torch.log(p[:, 0] / (p[:, 0] + noise + eps))
        neg = torch.log(noise / (p[:, 1:] + noise + eps))
        return -(pos.sum() + neg.sum()) / p.shape[0]

    return nce(scores_s, z_s) + nce(scores_t, z_t)
