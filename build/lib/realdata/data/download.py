"""Downloads with MD5 checks and atomic renames, and safe archive extraction."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from realdata.data.core import DataError


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(path: Path, expected: str, hint: str) -> None:
    actual = _md5(path)
    if actual != expected:
        raise DataError(f"MD5 mismatch for {path}: expected {expected}, got {actual}; {hint}")


def _download(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to ``dest`` through a temporary file in the same folder, renamed only once the MD5 matches.

    On any failure only that temporary file is removed; nothing already on disk is touched.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(f"download of {url} failed: {reason}") from None
        actual = digest.hexdigest()
        if actual != md5:
            raise DataError(
                f"MD5 mismatch for {dest.name} downloaded from {url}: expected {md5}, got {actual}; "
                f"the download was discarded, try again later"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _extract(archive: Path, data_dir: Path, folder: str) -> None:
    """Extract ``folder`` from the tar.gz ``archive`` into ``data_dir`` (via a temporary folder next to it)."""
    tmp = Path(tempfile.mkdtemp(dir=data_dir, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, filter="data")
                else:  # pragma: no cover - python without extraction filters
                    tar.extractall(tmp)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            msg = f"corrupt file {archive} ({type(e).__name__}: {e}); delete it and run again with --download"
            raise DataError(msg) from None
        src = tmp / folder
        if not src.is_dir():
            raise DataError(f"corrupt file {archive} (no {folder}/ inside); delete it and run again with --download")
        dst = data_dir / folder
        dst.mkdir(exist_ok=True)
        for item in src.iterdir():
            os.replace(item, dst / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
