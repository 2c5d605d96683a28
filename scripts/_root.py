"""Imported first by the scripts: puts the repository root on sys.path, since ``studies/`` (the experiment
protocols the scripts run) lives in the repository, not in the installed package."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
