"""Published teachers in mdistiller's layout: the cifar_teachers folder or the tarball itself (issue 35)."""

import io
import tarfile

import pytest
import torch

from fkdapp.runtime import atomic_save
from realdata.checkpoints import load_model
from realdata.models import build
from realdata.teachers import TeacherDirError, teacher_checkpoint


def make_tarball(path, archs=("resnet8", "resnet14")):
    """A small cifar_teachers.tar as mdistiller ships it: cifar_teachers/<arch>_vanilla/ckpt_epoch_240.pth."""
    with tarfile.open(path, "w") as tar:
        for arch in archs:
            buf = io.BytesIO()
            torch.save({"model": build(arch, num_classes=100).state_dict()}, buf)
            info = tarfile.TarInfo(f"cifar_teachers/{arch}_vanilla/ckpt_epoch_240.pth")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
    return path


def test_the_tarball_as_it_is(tmp_path):
    tar = make_tarball(tmp_path / "cifar_teachers.tar")
    path = teacher_checkpoint(tar, "resnet14")
    assert path == tmp_path / "cifar_teachers.tar.d" / "cifar_teachers" / "resnet14_vanilla" / "ckpt_epoch_240.pth"
    loaded = load_model(path, "resnet14")  # strict: the published format loads into the zoo's model
    assert loaded.arch == "resnet14" and loaded.num_classes == 100
    assert teacher_checkpoint(tar, "resnet8").is_file()  # extracted once, found again
    with pytest.raises(TeacherDirError, match="has no teacher vgg13: looked for vgg13.pth and vgg13_vanilla/"):
        teacher_checkpoint(tar, "vgg13")


def test_the_extracted_folder_and_the_benchmark_s_flat_layout(tmp_path):
    make_tarball(tmp_path / "t.tar")
    with tarfile.open(tmp_path / "t.tar") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    assert teacher_checkpoint(tmp_path / "x", "resnet8").parent.name == "resnet8_vanilla"  # above cifar_teachers/
    assert teacher_checkpoint(tmp_path / "x" / "cifar_teachers", "resnet8").is_file()
    atomic_save({"model": build("resnet8", num_classes=100).state_dict()}, tmp_path / "flat" / "resnet8.pth")
    assert teacher_checkpoint(tmp_path / "flat", "resnet8") == tmp_path / "flat" / "resnet8.pth"


def test_a_damaged_tarball_and_a_missing_folder_are_one_line(tmp_path):
    bad = tmp_path / "cifar_teachers.tar"
    bad.write_bytes(b"not a tar file at all")
    with pytest.raises(TeacherDirError, match="refused the teachers archive cifar_teachers.tar"):
        teacher_checkpoint(bad, "resnet8")
    assert not list(tmp_path.glob(".cifar_teachers.tar.extract-*"))  # nothing half-extracted is left
    with pytest.raises(TeacherDirError, match="is neither a folder nor a .tar"):
        teacher_checkpoint(tmp_path / "nowhere", "resnet8")


@pytest.mark.parametrize("kind", ["dotdot", "symlink", "hardlink", "fifo"])
def test_an_archive_that_reaches_outside_its_folder_is_refused_in_one_short_line(tmp_path, kind):
    import io

    archive = tmp_path / "cifar_teachers.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../evil.pth" if kind == "dotdot" else "cifar_teachers/x")
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        data = b"x" if info.type == tarfile.REGTYPE else b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(TeacherDirError, match="refused the teachers archive cifar_teachers.tar") as err:
        teacher_checkpoint(archive, "resnet8")
    assert len(str(err.value)) < 160 and not (tmp_path / "evil.pth").exists()
    assert not list(tmp_path.glob(".cifar_teachers.tar.extract-*"))
