"""The training engine: the trainer (one SGD step, an epoch, the initialisation stage, checkpoint state) and the
run around it (folders, resume, summary)."""

from realdata.engine.run import load_data, run_training
from realdata.engine.trainer import Interrupted, NonFiniteLoss, Trainer

__all__ = ["Interrupted", "NonFiniteLoss", "Trainer", "load_data", "run_training"]
