"""fkd: the shared core of Feature Kernel Distillation (kernels, kernel distance, distillation objectives)."""

from fkd.benchmark_objectives import (
    ab_loss,
    cc_loss,
    fsp_loss,
    fsp_matrices,
    ft_factor,
    ft_loss,
    nst_loss,
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
from fkd.module import FeatureTap, FKDLoss, FKDTerms, layer_names
from fkd.objectives import (
    at_loss,
    attention_map,
    crd_loss,
    dkd_loss,
    fkd_loss,
    kd_loss,
    pkt_loss,
    rkd_loss,
    sp_loss,
    teacher_factor,
    teacher_kernel,
)

__version__ = "0.1.0"

__all__ = [
    "FKDLoss",
    "FKDTerms",
    "FeatureTap",
    "ab_loss",
    "at_loss",
    "attention_map",
    "cc_loss",
    "crd_loss",
    "dkd_loss",
    "factored_kernel_distance",
    "feature_kernel",
    "feature_regularizer",
    "fkd_loss",
    "fsp_loss",
    "fsp_matrices",
    "ft_factor",
    "ft_loss",
    "kd_loss",
    "kernel_distance",
    "layer_names",
    "max_kernel",
    "normalized_kernel",
    "nst_loss",
    "one_sided_kernel_distance",
    "pkt_loss",
    "pool_pair",
    "rkd_loss",
    "sp_loss",
    "teacher_factor",
    "teacher_kernel",
    "unit_rows",
    "vid_loss",
]
