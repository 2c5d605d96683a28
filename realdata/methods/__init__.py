"""Distillation methods on images: one short class per method, in the file of its family, and the registry.

Each method is a small :class:`~realdata.methods.base.Distiller` (in the spirit of mdistiller): ``forward(images,
labels, transfer_images=None, indices=None, epoch=1, step=0)`` returns ``(student logits, {"ce": ..., "<term>":
...})``, the named losses already weighted, so their sum is the training loss. The losses themselves come from
:mod:`fkd`; a method only decides which network outputs go into them and with which weights, and receives what a
step knows (labels, indices, epoch) as a :class:`~realdata.methods.base.StepContext` argument. :data:`METHODS`
(name -> class) is the only place a method is looked up by name.

Families: :mod:`.logit` (CE, KD, DKD, DIST, WTTM, CTKD, MLKD), :mod:`.relational` (FKD, SP, PKT, RKD, CC),
:mod:`.stages` (AT, FitNet, VID, NST, ReviewKD, OFD), :mod:`.two_stage` (FT, FSP, AB: an initialisation stage first),
:mod:`.contrastive` (CRD); :mod:`.compose` adds KD to any of them (``NAME+kd``).

Teachers are frozen (``requires_grad`` False) and stay in eval mode whatever ``.train()`` is called on the
distiller. Several teachers make an ensemble: FKD takes the mean of their normalised kernels, KD the mean of their
logits, and the feature baselines (SP, PKT, RKD) average their loss over the teachers. Teachers may have any
architecture and feature width; a teacher trained on 3-channel images gets 1-channel inputs repeated over 3.

Transfer images (cross-data-set distillation, no labels used): the student sees the labelled batch and the transfer
batch in one forward pass (so they must have the same shape); the cross-entropy uses the labelled part, the
distillation terms (and FKD's feature regulariser) the transfer part, on which the teachers run.

Several processes (torchrun): the per-sample terms (CE, KD) use this rank's shard of the batch; a relational method
names in its needs (``Needs(gathered=...)``) the outputs it compares across samples (FKD, PKT, RKD: pooled
features; SP: the last map), and :meth:`Distiller.forward` gathers them once from every rank
(:func:`realdata.distributed.global_batch`, the identity in one process), which also makes their gradient come out
right after DDP's averaging. Every term computed from a
gathered output (FKD's regulariser included) is then a function of the global batch.

Parameters are named for what they weigh (``kd_weight``, ``lambda`` and ``feature_reg`` for FKD, ``sp_weight``,
``pkt_weight``, ``rkd_weight``), with the same names as the simulation's methods where the objective is the same;
each is declared once, as a :class:`fkdapp.params.Param` in the method's ``SPEC``.
"""

from realdata.methods.base import Distiller, InitStage, Outputs, StepContext, in_channels_of
from realdata.methods.compose import with_kd
from realdata.methods.contrastive import CRD, ContrastMemory
from realdata.methods.logit import CE, CTKD, DIST, DKD, KD, MLKD, WTTM
from realdata.methods.needs import Needs, gives
from realdata.methods.relational import CC, FKD, PKT, RKD, SP, FKDAdd
from realdata.methods.stages import AT, NST, OFD, VID, FitNet, ReviewKD
from realdata.methods.two_stage import AB, FSP, FT

#: Method name -> Distiller class, the methods themselves; a run looks its method up once, in
#: :func:`realdata.methods.plan.method_class`, which also composes ``NAME+kd`` (NAME with a KD term added).
METHODS: dict[str, type[Distiller]] = {cls.NAME: cls for cls in (
    CE, KD, DKD, DIST, WTTM, CTKD, MLKD, FKD, FKDAdd, SP, PKT, RKD, AT, FitNet, CRD, CC, VID, NST, ReviewKD, OFD, FT,
    AB, FSP)}

__all__ = ["AB", "AT", "CC", "CE", "CRD", "CTKD", "DIST", "DKD", "FKD", "FSP", "FT", "KD", "METHODS", "MLKD", "NST",
           "OFD", "PKT", "RKD", "SP", "VID", "WTTM", "ContrastMemory", "Distiller", "FKDAdd", "FitNet", "Outputs",
           "InitStage", "Needs", "ReviewKD", "StepContext", "gives", "in_channels_of", "with_kd"]
