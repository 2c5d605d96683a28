"""benchmarks/device_check.sh --smoke: every part of the GPU check runs at tiny size on the CPU, so it cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_device_check_smoke(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(ROOT / "benchmarks" / "device_check.sh"), "--smoke", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "device_check.json").read_text())
    parts = summary["parts"]
    assert set(parts) >= {"cuda_tests", "agreement", "multiview_speed", "k20_sweep", "engines", "realdata_bf16_cl",
                          "realdata_fp32", "realdata_feeding"}
    assert parts["engines"]["students"] == 10 and parts["engines"]["exact_over_batched_time"] > 0
    assert parts["agreement"]["same_views"] and parts["agreement"]["max_failure_difference"] == 0
    assert parts["cuda_tests"]["failures"] == 0 and parts["cuda_tests"]["skipped"] == parts["cuda_tests"]["tests"]
    speed = parts["multiview_speed"]["result"]["results"]
    assert set(speed) == {"1", "2"} and all(r["loop_over_population"] > 0 for r in speed.values())
    step = parts["realdata_fp32"]["result"]
    assert {"ce", "kd", "fkd", "sp", "pkt", "rkd"} <= set(step["results"]) and step["fkd_over_kd"] > 0
    assert parts["realdata_feeding"]["images_per_s"]["dataloader"] > 0
