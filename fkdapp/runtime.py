"""Run-time helpers shared by both packages: device choice, process ranks, environment records, atomic writes."""

from __future__ import annotations

import errno
import io
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from fkdapp.errors import UserError
from fkdapp.ranks import is_main, rank, world_size

__all__ = ["DeviceError", "WriteError", "atomic_save", "atomic_save_figure", "atomic_write", "atomic_write_bytes",
           "atomic_write_text", "available_memory", "check_writable", "device_name", "environment", "is_main", "rank",
           "read_jsonl", "resolve_device", "world_size", "write_json", "write_jsonl"]


class DeviceError(UserError):
    """A device that does not exist here (one line, says what to use instead)."""


class WriteError(UserError):
    """A file could not be written (disk full, no permission); the previous version of it is intact."""


class RecordsError(UserError):
    """A records file that is corrupt before its last line (a torn last line is tolerated, not an error)."""


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when there is one, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> a usable device."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} asked for, but this torch ({torch.__version__}) sees no CUDA device; "
                              "use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    return device


def _git_commit() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return {}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=5)
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """A human-readable name of ``device`` (the GPU's name, or the CPU model)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_name()


def environment(device: torch.device) -> dict[str, Any]:
    """Where a result was made: versions, device, threads, host, command line, git commit."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "argv": sys.argv,
        **_git_commit(),
    }


def _cause(e: OSError, path: Path, size: int | None = None) -> str:
    """One phrase for a failed write: the OS's reason, and for a full disk how much was needed and is free."""
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        try:
            free = shutil.disk_usage(next(p for p in (path, *path.parents) if p.exists())).free
        except (OSError, StopIteration):
            free = None
        need = f"needed {size} bytes" if size is not None else ""
        have = f"{free} bytes free" if free is not None else ""
        reason += f" ({', '.join(x for x in (need, have) if x)})" if need or have else ""
    return reason


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None], size: int | None = None) -> None:
    """Write a file through ``write`` into a temporary file beside ``path``, fsync, then rename it over ``path``:
    a reader (or a killed process) never sees a partial file. A write that fails (a full disk, no permission, a
    read-only file system) is one WriteError line naming the path and the cause (for a full disk the bytes needed,
    ``size``, where known, and the bytes free), leaves no temporary file and the previous version intact."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # the mode open() would give, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        if tmp is not None:  # first, so that the space it held counts as free in the message
            Path(tmp).unlink(missing_ok=True)
            tmp = None
        kept = "the previous version is intact" if path.is_file() else "nothing was written"
        raise WriteError(f"cannot write {path}: {_cause(e, path, size)}; {kept}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """``atomic_write`` of bytes already in memory (a full disk then says how many were needed)."""
    atomic_write(path, lambda f: f.write(data), size=len(data))


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` into memory, then :func:`atomic_write_bytes`: a full disk or a read-only folder is one
    WriteError line (with the bytes needed), never torch's serializer's error, and the previous file stays intact."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def atomic_save_figure(fig: Any, path: str | Path, dpi: int) -> None:
    """A matplotlib figure rendered in memory, in the format its suffix names (png without one; an unknown one is
    matplotlib's ValueError), then :func:`atomic_write_bytes`: a failed write is one WriteError line."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format=Path(path).suffix[1:].lower() or "png")
    atomic_write_bytes(path, buffer.getbuffer())


#: The prefix of check_writable's probe files (folders that must be empty look past them: another process of a
#: torchrun job may be probing the same folder at that moment).
PROBE_PREFIX = ".write-check."


def check_writable(folder: str | Path, what: str) -> Path:
    """Make ``folder`` (and its parents) and write and remove a small file in it, before any compute is spent: a
    folder that cannot be written (read-only file system, no permission, a full disk, a file in the way) is one
    WriteError line naming it, what it is for (``what``, e.g. "--out") and the cause."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=PROBE_PREFIX, suffix=".tmp")
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            Path(probe).unlink(missing_ok=True)
    except OSError as e:
        raise WriteError(f"cannot write to {folder} ({what}): {_cause(e, folder)}; choose another folder") from None
    return folder


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write`` of a UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | Path, data: Any) -> None:
    """``atomic_write`` of ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


_warned: set[str] = set()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (none if it is absent). A last line cut short (a process killed, or a full
    disk, in the middle of an append) is dropped with a one-line warning on stderr, once per file and process; a
    bad line before the last is a one-line RecordsError."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if any(rest.strip() for rest in lines[i + 1:]):
                raise RecordsError(f"{path}: line {i + 1} is not a JSON record; remove or repair that line") from None
            if str(path) not in _warned:
                _warned.add(str(path))
                print(f"Warning: {path}: the last line is cut short (a write was interrupted); kept the {len(rows)} "
                      "complete records", file=sys.stderr)
    return rows


def jsonl_text(rows: list[dict[str, Any]]) -> str:
    """Records as JSON lines, each ended by a newline (what :func:`write_jsonl` writes)."""
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """``atomic_write`` of records as JSON lines: the file is never left torn by this writer."""
    atomic_write_text(path, jsonl_text(rows))


def available_memory() -> int | None:
    """Bytes of memory this machine has free (MemAvailable; None where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
