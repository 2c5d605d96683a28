"""Time :func:`realdata.evaluate.evaluate` on a CPU: the channels-last copy it makes of a zoo model against the model's
own (contiguous) layout, interleaved in one process, on random Fashion-MNIST-shaped images (1x28x28 padded to 32).

Reports the median seconds of each over the repeats and their ratio (contiguous / channels-last), per architecture,
and checks that both give the same accuracy. Results go to ``benchmarks/results/eval_layout_cpu.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_eval_layout.py      # ~1 minute on a 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fkdapp.runtime import device_name  # noqa: E402
from realdata.data import ImageData  # noqa: E402
from realdata.evaluate import evaluate  # noqa: E402
from realdata.models import build  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="resnet8,resnet20")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/eval_layout_cpu.json"))
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    n = a.images
    data = ImageData(name="fashion_mnist", train_x=torch.zeros(2, 1, 32, 32, dtype=torch.uint8),
                     train_y=torch.zeros(2, dtype=torch.long),
                     test_x=torch.randint(0, 256, (n, 1, 32, 32), generator=g, dtype=torch.uint8),
                     test_y=torch.randint(0, 10, (n,), generator=g), num_classes=10, mean=(0.286,), std=(0.353,))
    rows = {}
    for arch in a.archs.split(","):
        model = build(arch, 10, 1)
        times: dict[str, list[float]] = {"contiguous": [], "channels_last_copy": []}
        accs = {}
        for _ in range(a.repeats):
            for name, fmt in (("contiguous", torch.preserve_format), ("channels_last_copy", torch.contiguous_format)):
                start = time.perf_counter()  # preserve_format skips the copy: the model's own layout
                accs[name] = evaluate(model, data, a.batch_size, memory_format=fmt)
                times[name].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        assert accs["contiguous"] == accs["channels_last_copy"], accs
        rows[arch] = {**{f"{k}_s": v for k, v in med.items()}, "ratio": med["contiguous"] / med["channels_last_copy"]}
        print(f"{arch}: contiguous {med['contiguous']:.2f}s, channels-last copy {med['channels_last_copy']:.2f}s, "
              f"ratio {rows[arch]['ratio']:.2f}x")
    result = {"device": device_name(torch.device("cpu")), "threads": torch.get_num_threads(), "images": n,
              "batch_size": a.batch_size, "repeats": a.repeats, "archs": rows}
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
