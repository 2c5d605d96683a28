"""Checkpoints: writing and reading them, rebuilding their models, and whose run a checkpoint is.

Checkpoints are written atomically (a temporary file in the same folder, then ``os.replace``). A model checkpoint
of ours is ``{'model': state_dict, 'arch': name, 'num_classes': K, 'in_channels': C, 'image_size': S,
'dataset': name, ...}``, so it loads without naming the architecture again; a published CRD checkpoint
``{'model': state_dict}`` (or a bare state dict: torchvision's weights) needs the architecture named. A state dict is
only ever loaded strictly, after a check that reports a mismatch in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fkdapp.errors import UserError
from fkdapp.jsonfile import short
from realdata.config import ConfigError, TrainConfig
from realdata.methods.plan import identities
from realdata.models import build, is_spec, known

CHECKPOINT_FORMAT = 1


class RunError(UserError):
    """A problem with a run folder or a checkpoint; the message is one line meant for the user."""


class CheckpointError(RunError):
    """A checkpoint that cannot be read or does not fit the architecture it is loaded into."""


def model_checkpoint(model: nn.Module, arch: str, num_classes: int, in_channels: int, image_size: int,
                     dataset: str, **extra: Any) -> dict[str, Any]:
    """A self-describing model checkpoint (plus ``extra`` entries)."""
    return {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "arch": arch, "num_classes": num_classes,
            "in_channels": in_channels, "image_size": image_size, "dataset": dataset,
            "unit_features": bool(getattr(model, "unit_features", False)),
            "feature_layer": getattr(model, "feature_layer", None), **extra}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint file as a dict with a ``'model'`` state dict (tensors only: loaded with weights_only). A bare
    state dict (torchvision's published weights, ``resnet34-333f7ec4.pth``) is read as ``{'model': it}``; it records
    no architecture, so it is named where it is used (``--teacher FILE:resnet34``)."""
    path = Path(path)
    if path.is_dir():
        inside = [n for n in ("best.pt", "last.pt") if (path / n).is_file()]
        hint = f"give {path / inside[0]}" if inside else "give a .pt checkpoint file"
        raise CheckpointError(f"{path} is a folder, not a checkpoint: {hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if path.suffix in (".json", ".jsonl"):
        beside = [n for n in ("best.pt", "last.pt") if (path.parent / n).is_file()]
        hint = f"give {path.parent / beside[0]}" if beside else "give a .pt checkpoint file"
        raise CheckpointError(f"{path} is a JSON file, not a checkpoint: {hint}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; any of them means the same to the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights only load failed" in reason.lower():
            reason = "not a plain torch checkpoint (its weights-only load failed)"
        raise CheckpointError(f"cannot read checkpoint {path}: {reason[:80]}") from None
    bare = isinstance(ckpt, dict) and ckpt and "model" not in ckpt
    if bare and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        ckpt = {"model": ckpt}
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path} is not a model checkpoint (expected a dict with a 'model' state dict)")
    bad = [k for k, v in ckpt["model"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: 'model' is not a state dict (entry {bad[0]!r} is not a tensor)")
    return ckpt


def nonfinite_entries(state: dict[str, Any]) -> list[str]:
    """The names of a state dict's floating tensors that hold NaN or an infinity."""
    return [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def check_finite(state: dict[str, Any], what: str, fix: str) -> None:
    """A one-line CheckpointError where a tensor of ``state`` is not finite (naming the first and the count)."""
    bad = nonfinite_entries(state)
    if bad:
        raise CheckpointError(f"{what} holds NaN or infinite values in {len(bad)} tensor(s) (e.g. {bad[0]}); {fix}")


def _first(model: nn.Module, kind: type[nn.Module], last: bool = False) -> str | None:
    names = [name for name, m in model.named_modules() if isinstance(m, kind)]
    return (names[-1] if last else names[0]) + ".weight" if names else None


def _infer_shape(arch: str, state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(num_classes, in_channels) of a state dict for ``arch`` that does not record them (a CRD checkpoint)."""
    reference = build(arch)
    head, stem = _first(reference, nn.Linear, last=True), _first(reference, nn.Conv2d)
    num_classes = state[head].shape[0] if head in state and state[head].ndim == 2 else 100
    in_channels = state[stem].shape[1] if stem in state and state[stem].ndim == 4 else 3
    return int(num_classes), int(in_channels)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, arch: str,
                     recorded: str | None = None) -> None:
    """Raise a one-line CheckpointError unless ``state`` has exactly ``model``'s entries and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or shapes):
        return
    found = []
    if missing:
        found.append(f"{len(missing)} missing entries (e.g. {missing[0]})")
    if unexpected:
        found.append(f"{len(unexpected)} unexpected entries (e.g. {unexpected[0]})")
    if shapes:
        k = shapes[0]
        found.append(f"{len(shapes)} entries of another shape (e.g. {k}: {tuple(state[k].shape)} in the checkpoint, "
                     f"{tuple(expected[k].shape)} in {arch})")
    says = f" (the checkpoint says {recorded!r})" if recorded and recorded != arch else ""
    raise CheckpointError(f"checkpoint {path} does not fit arch {arch!r}{says}: found {'; '.join(found)}")


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a checkpoint, with what the checkpoint says about it."""

    model: nn.Module
    arch: str
    num_classes: int
    in_channels: int
    image_size: int | None
    dataset: str | None
    path: str


def load_model(path: str | Path, arch: str | None = None) -> LoadedModel:
    """Rebuild the model of checkpoint ``path`` (``arch`` required where the checkpoint does not record it)."""
    ckpt = read_checkpoint(path)
    recorded = ckpt.get("arch")
    if arch is None and recorded is None:
        raise CheckpointError(f"checkpoint {path} does not record its architecture: add --teacher-arch NAME "
                              "(evaluate: --arch NAME)")
    if arch is None and not isinstance(recorded, str):
        raise CheckpointError(f"checkpoint {path} records an architecture that is not a name; give --teacher-arch "
                              "NAME (evaluate: --arch NAME)")
    if arch is None and is_spec(recorded):
        raise CheckpointError(f"checkpoint {path} was made by your own model {short(recorded)}; a file never chooses "
                              f"code to run: name it yourself with --teacher-arch {recorded[:80]} (evaluate: --arch)")
    if arch is not None and isinstance(recorded, str) and recorded != arch:
        raise CheckpointError(f"checkpoint {path} holds a {short(recorded, 40)}, not the {arch} asked for; give a "
                              f"{arch} checkpoint, or drop the arch to use it")
    arch = arch or recorded
    try:
        if not known(arch):
            raise CheckpointError(f"checkpoint {path}: unknown arch {arch!r}; a zoo name or package.module:factory")
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    state = ckpt["model"]
    if isinstance(ckpt.get("num_classes"), int) and isinstance(ckpt.get("in_channels"), int):
        num_classes, in_channels = ckpt["num_classes"], ckpt["in_channels"]
    else:
        num_classes, in_channels = _infer_shape(arch, state)
    try:
        model = build(arch, num_classes=num_classes, in_channels=in_channels, feature_layer=ckpt.get("feature_layer"))
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    check_state_dict(model, state, path, arch, recorded)
    check_finite(state, f"checkpoint {path}", "it cannot be used: retrain it, or give an earlier checkpoint")
    model.load_state_dict(state, strict=True)
    model.unit_features = ckpt.get("unit_features") is True  # the head reads unit-length features (FKD's norm_head)
    return LoadedModel(model, arch, num_classes, in_channels, ckpt.get("image_size"), ckpt.get("dataset"), str(path))


def belongs_to(state: dict[str, Any], config: TrainConfig) -> bool:
    """Whether checkpoint ``state`` was written by the run of ``config``: its stored config digest, or for
    checkpoints written before digests the config it carries (True where it records neither)."""
    stored = state.get("run_identity")
    if stored is None and isinstance(state.get("config"), dict):
        try:
            stored = TrainConfig.from_dict(state["config"]).digest()
        except (ConfigError, TypeError, ValueError):
            return False
    return stored is None or stored in identities(config)


def load_teachers(config: TrainConfig) -> tuple[list[LoadedModel], TrainConfig]:
    """The config's teachers, rebuilt, and the config with every teacher's arch filled in."""
    teachers = [load_model(p, a) for p, a in zip(config.teachers, config.teacher_archs, strict=True)]
    return teachers, config.with_updates(teacher_archs=tuple(t.arch for t in teachers))
