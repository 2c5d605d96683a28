"""fkd: the shared core of Feature Kernel Distillation (kernels, kernel distance, distillation objectives)."""

from fkd.kernels import (
    factored_kernel_distance,
    feature_kernel,
    feature_regularizer,
    kernel_distance,
    normalized_kernel,
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
    "at_loss",
    "attention_map",
    "crd_loss",
    "dkd_loss",
    "factored_kernel_distance",
    "feature_kernel",
    "feature_regularizer",
    "fkd_loss",
    "kd_loss",
    "kernel_distance",
    "layer_names",
    "normalized_kernel",
    "pkt_loss",
    "rkd_loss",
    "sp_loss",
    "teacher_factor",
    "teacher_kernel",
    "unit_rows",
]
