"""fkd: the shared core of Feature Kernel Distillation (kernels, kernel distance, distillation objectives).

By family: :mod:`fkd.kernels` (feature kernels, the normalised kernel, kernel distances), :mod:`fkd.relational`
(FKD's loss, SP, PKT, RKD, CC), :mod:`fkd.feature_maps` (AT, NST, FT, AB, FSP, VID, OFD, HCL), :mod:`fkd.contrastive`
(CRD), :mod:`fkd.logit` (KD, DKD, DIST, WTTM, CTKD, MLKD), :mod:`fkd.module` (FKDLoss, FeatureTap), :mod:`fkd.optim`
(DOT). Every public name is importable from ``fkd`` itself."""

from fkd.contrastive import crd_loss
from fkd.feature_maps import (
    ab_loss,
    at_loss,
    attention_map,
    fsp_loss,
    fsp_matrices,
    ft_factor,
    ft_loss,
    hcl_loss,
    nst_loss,
    ofd_loss,
    ofd_margin,
    pool_pair,
    vid_loss,
)
from fkd.kernels import (
    factored_kernel_distance,
    feature_kernel,
    feature_regularizer,
    kernel_distance,
    max_kernel,
    normalized_kernel,
    one_sided_kernel_distance,
    unit_rows,
)
from fkd.logit import (
    ctkd_reversal,
    ctkd_temperature,
    dist_loss,
    dkd_loss,
    kd_loss,
    mlkd_terms,
    standardize_logits,
    wttm_loss,
)
from fkd.module import FeatureTap, FKDLoss, FKDTerms, layer_names
from fkd.optim import DOT
from fkd.relational import (
    cc_loss,
    fkd_loss,
    pkt_loss,
    rkd_loss,
    sp_loss,
    teacher_factor,
    teacher_kernel,
)

__version__ = "0.1.0"

__all__ = [
    "DOT",
    "FKDLoss",
    "FKDTerms",
    "FeatureTap",
    "ab_loss",
    "at_loss",
    "attention_map",
    "cc_loss",
    "crd_loss",
    "ctkd_reversal",
    "ctkd_temperature",
    "dist_loss",
    "dkd_loss",
    "factored_kernel_distance",
    "feature_kernel",
    "feature_regularizer",
    "fkd_loss",
    "fsp_loss",
    "fsp_matrices",
    "ft_factor",
    "ft_loss",
    "hcl_loss",
    "kd_loss",
    "kernel_distance",
    "layer_names",
    "max_kernel",
    "mlkd_terms",
    "normalized_kernel",
    "nst_loss",
    "ofd_loss",
    "ofd_margin",
    "one_sided_kernel_distance",
    "pkt_loss",
    "pool_pair",
    "rkd_loss",
    "sp_loss",
    "standardize_logits",
    "teacher_factor",
    "teacher_kernel",
    "unit_rows",
    "vid_loss",
    "wttm_loss",
]
