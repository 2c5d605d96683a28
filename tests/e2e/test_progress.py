"""Progress: a live line under a terminal (tested under a pseudo-terminal), flushed plain lines in a piped log."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tiny_sim import SMOKE

from fkdapp.progress import Progress, clock

TINY = SMOKE


def test_progress_line_and_eta():
    out = io.StringIO()
    p = Progress(total=10, label="work", stream=out, log_interval=0)
    p(5)
    p.update("loss 1.0")
    p(5)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("work:  50.0% (5/10)") and "ETA" in lines[0]
    assert lines[-1].startswith("work: 100.0% (10/10)") and lines[-1].endswith("loss 1.0")
    assert clock(75) == "1:15" and clock(3725) == "1:02:05"


def _simulate(tmp_path: Path) -> list[str]:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(TINY))
    return [sys.executable, "-m", "multiview", "simulate", "--teachers", "1", "--config", str(cfg), "--device", "cpu",
            "--out", str(tmp_path / "o")]


def test_multiview_progress_under_a_terminal(tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen(_simulate(tmp_path), stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.close(slave)
    data, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:  # a child that hangs fails the test instead of blocking the read
        if not select.select([master], [], [], 1.0)[0]:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
    proc.wait(timeout=30)
    os.close(master)
    text = data.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "\r" in text and "ETA" in text and "100.0%" in text  # redrawn in place, finished


def test_multiview_progress_in_a_piped_log(tmp_path):
    proc = subprocess.run(_simulate(tmp_path), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "steps:" in line]
    assert lines and "\r" not in proc.stderr and lines[-1].split("steps:")[1].strip().startswith("100.0%")
    again = subprocess.run(_simulate(tmp_path), capture_output=True, text=True, timeout=120)
    assert "resuming from" in again.stderr and "start fresh" in again.stderr  # a reused result says so
