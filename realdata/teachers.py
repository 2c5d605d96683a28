"""Published teacher checkpoints in the layouts people have them: a folder of ``<arch>.pth`` files (the CRD
benchmark's), mdistiller's ``cifar_teachers`` folder (``<arch>_vanilla/ckpt_epoch_240.pth``), or mdistiller's
``cifar_teachers.tar`` itself, extracted once beside it (safely: no path leaves the folder).

Each file holds ``{'model': state_dict}`` (the CRD benchmark's and mdistiller's format); ``realdata`` loads it
strictly into the zoo model of that name, so a file of another architecture is refused in one line.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from fkdapp.errors import UserError

#: mdistiller's file name inside each ``<arch>_vanilla`` folder.
MDISTILLER_FILE = "ckpt_epoch_240.pth"


class TeacherDirError(UserError):
    """A --teacher-dir that does not hold the teacher asked for, or a damaged teachers archive."""


def _extracted(archive: Path) -> Path:
    """The folder ``archive`` (a .tar or .tar.gz) was extracted to (``<archive>.d``), extracting it first if
    needed: into a temporary folder beside it, then renamed, so a stopped extraction leaves nothing half-done."""
    dest = archive.with_name(archive.name + ".d")
    if dest.is_dir():
        return dest
    tmp = Path(tempfile.mkdtemp(dir=archive.parent, prefix=f".{archive.name}.extract-"))
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as e:
            why = str(e).split(":")[0][:60] if isinstance(e, tarfile.FilterError) else f"{type(e).__name__}: {e}"[:80]
            raise TeacherDirError(f"refused the teachers archive {archive.name} ({why}); download it again") from None
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _roots(teacher_dir: Path) -> list[Path]:
    """The folders to look in: the folder itself and a ``cifar_teachers`` folder inside it (the tarball's top)."""
    return [teacher_dir, teacher_dir / "cifar_teachers"]


def teacher_checkpoint(teacher_dir: str | Path, arch: str) -> Path:
    """The checkpoint of teacher ``arch`` under ``teacher_dir``: ``<arch>.pth``, or mdistiller's
    ``<arch>_vanilla/ckpt_epoch_240.pth`` (directly or under ``cifar_teachers/``); ``teacher_dir`` may also be
    mdistiller's ``cifar_teachers.tar``. A one-line TeacherDirError names what is missing."""
    path = Path(teacher_dir)
    if path.is_file() and (path.name.endswith((".tar", ".tar.gz", ".tgz"))):
        path = _extracted(path)
    if not path.is_dir():
        raise TeacherDirError(f"--teacher-dir {teacher_dir} is neither a folder nor a .tar of teachers")
    for root in _roots(path):
        for candidate in (root / f"{arch}.pth", root / f"{arch}_vanilla" / MDISTILLER_FILE):
            if candidate.is_file():
                return candidate
    raise TeacherDirError(f"--teacher-dir {teacher_dir} has no teacher {arch}: looked for {arch}.pth and "
                          f"{arch}_vanilla/{MDISTILLER_FILE} (also under cifar_teachers/)")
