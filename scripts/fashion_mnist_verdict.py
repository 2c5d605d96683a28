"""A fair verdict on FKD against KD and the other methods on real images: every method tuned with the same budget on
a validation split, then reported on fresh seeds on the test set.

The setting (Fashion-MNIST, the converged study's): a resnet20 teacher (seed 0, the whole training set, --teacher-
epochs of cross-entropy) -> resnet8 students on a fixed class-balanced subset of --train-size labelled images,
--epochs epochs of the standard recipe scaled (batch 64, lr 0.05, x0.1 at 5/8, 3/4, 7/8 of training), a class-
balanced validation split of --val-size images outside the subset (the same for every run). The same data, epochs,
schedule and batch for every method; only the method's own weights are tuned.

Budgets and rules, declared before running:

1. ``select`` (seeds --select-seeds, 2 by default): the first --settings settings of each method's grid (the same
   number for every method), each run on both seeds; the chosen setting is the one with the highest mean
   last-epoch *validation* accuracy (ties: the earlier in the list). Each grid lists a coarse log grid first, then
   the points between, so that the first 3 span a factor of 16:
   - ce (the student alone; it has no distillation weight): weight decay x (1/4, 1, 4, 1/2, 2, 8) of 5e-4;
   - kd, dkd (alpha and beta together), sp, pkt, rkd, at, fitnet, crd: the method's weight x (1/4, 1, 4, 1/2, 2,
     8) of its published CIFAR-100 value (the log grid ``FACTORS``);
   - fkd: lambda in (25, 100, 400) at feature_reg 1e-4, then the same at 1e-3 (its published 100 and 1e-4
     inside, the other public implementation's 300 near 400).
2. ``report`` (seeds --report-seeds, fresh ones): each method at its chosen setting; last-epoch test accuracy,
   mean ± 95% interval; the per-seed paired difference FKD - KD.
3. ``lowlabel`` (report seeds): 500 labelled images (--low-labels): the student alone, FKD, KD and the best other
   method by validation (their chosen settings), once on the labelled images alone and once with the distillation
   terms also on --unlabelled unlabelled training images outside the labelled subset and the validation split.
4. ``recipe`` (report seeds; rows of their own, not part of FKD's selection): FKD at its chosen setting with the
   classifier reading unit-length features (norm_head=1); with the norm instead of the squared norm as regulariser
   (reg_power=1, weight x4, so that it is of the same size for features of norm about 4); and FKD and KD at their
   chosen settings with batch 256 (lr scaled linearly to 0.2, the same rule for both).
5. ``ensemble`` (report seeds): teachers that differ: four architectures (resnet20, wrn_16_2, vgg8, resnet14), each
   trained on its own quarter of the training images (``--train-part i/4``), so that each sees different data and
   their ensembles are clearly better than one; FKD and KD at their chosen settings from the first E of them, E = 1,
   2, 4; each teacher ensemble's test accuracy (mean logits).

Every run is a ``realdata`` command in its own folder under OUT (--jobs at a time, --threads threads each; each
passes --resume, so the script can be stopped and run again: finished runs are skipped, unfinished ones continue).
``--from PHASE`` and ``--until PHASE`` run the phases between (the teacher is trained only for the phases that use
it: select to recipe); the selection is read from the finished selection runs, or with ``--selection RECORD`` from
the record of an earlier run of this script (checked against this run's grids), so that a later phase can run in
another sitting or on another machine without the selection runs. Writes FIGURES/NAME.md (the tables of the phases
run), FIGURES/NAME.json (every number, the selection record, the wall time per phase, the device) and
FIGURES/NAME.png (the ensemble curve), NAME being --name (fashion_mnist_verdict).

The runs read the test set at their last epoch only (``--val-size``): it never chooses a setting or a checkpoint.

Cost measured on an AMD EPYC CPU (2 jobs of 1 thread): the teacher about 30-45 min of one core; with the defaults
(3 settings per method, 2 selection seeds, 3 report seeds: the budget that fits one 3-hour session) selection 39 min,
report 28, lowlabel 8, recipe 9; the ensemble's four member teachers 21 min, its students 39 min at 5 seeds. The
full budget, ``--settings 6 --report-seeds 2,3,4,5,6``, is about twice the selection and the later phases.

    python scripts/fashion_mnist_verdict.py --out runs/fmnist-verdict --until select
    python scripts/fashion_mnist_verdict.py --from ensemble --selection figures/fashion_mnist_verdict.json \
        --name fashion_mnist_verdict_ensemble
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fkdapp.runtime import atomic_save_figure, atomic_write_text
from fkdapp.stats import format_mean_ci as fmt
from fkdapp.stats import mean_ci
from realdata.jobs import Job, last_accs, last_row, last_rows, realdata, run_jobs
from realdata.methods import METHODS

STUDENT, TEACHER = "resnet8", "resnet20"
MEMBERS = ("resnet20", "wrn_16_2", "vgg8", "resnet14")
FACTORS = (0.25, 1.0, 4.0, 0.5, 2.0, 8.0)  # the coarse grid first
#: The parameters each method's weight scales (DKD: both of its terms).
WEIGHTS = {"kd": ("kd_weight",), "dkd": ("alpha", "beta"), "sp": ("sp_weight",), "pkt": ("pkt_weight",),
           "rkd": ("rkd_weight",), "at": ("at_weight",), "fitnet": ("hint_weight",), "crd": ("crd_weight",)}
FKD_GRID = [(lam, reg) for reg in (1e-4, 1e-3) for lam in (25.0, 100.0, 400.0)]
BASE_WD = 5e-4
PHASES = ["select", "report", "lowlabel", "recipe", "ensemble"]  # in order of what the verdict needs most


def settings(method: str, first: int = 6) -> list[dict]:
    """The method's selection grid (its ``first`` settings): each as {"params": {...}} and/or {"flags": [...]}
    (ce: weight decay)."""
    if method == "ce":
        grid = [{"flags": ["--weight-decay", f"{BASE_WD * f:g}"]} for f in FACTORS]
    elif method == "fkd":
        grid = [{"params": {"lambda": lam, "feature_reg": reg}} for lam, reg in FKD_GRID]
    else:
        grid = [{"params": {p: METHODS[method].PARAMS[p] * f for p in WEIGHTS[method]}} for f in FACTORS]
    return grid[:first]


def setting_args(setting: dict) -> list[str]:
    return [*setting.get("flags", []), *(a for k, v in setting.get("params", {}).items()
                                         for a in ("--param", f"{k}={v:g}"))]


def label(setting: dict) -> str:
    flags = setting.get("flags", [])
    return ",".join([*(f"{k}={v:g}" for k, v in setting.get("params", {}).items()),
                     *(f"{flags[i].lstrip('-')}={flags[i + 1]}" for i in range(0, len(flags), 2))]) or "default"


class Study:
    """The study's folders and commands."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a, self.out = a, a.out
        self.common = ["--dataset", "fashion_mnist", "--data-dir", a.data_dir, "--device", a.device,
                       "--eval-batch-size", str(a.eval_batch_size), "--resume", "--no-progress"]
        self.student = ["--student", STUDENT, "--epochs", str(a.epochs), "--batch-size", str(a.batch_size),
                        "--val-size", str(a.val_size), *self.common]

    def teacher(self, arch: str, part: str | None = None) -> Job:
        name = arch if part is None else f"{arch}-part{part.replace('/', 'of')}"
        folder = self.out / "teachers" / name
        split = [] if part is None else ["--train-part", part]
        return Job(("train", "--model", arch, "--seed", "0", "--epochs", str(self.a.teacher_epochs), *split,
                    "--batch-size", str(self.a.batch_size), "--out", str(folder), *self.common), folder)

    def members(self) -> list[Job]:
        return [self.teacher(arch, f"{i + 1}/4") for i, arch in enumerate(MEMBERS)]

    def student_job(self, folder: Path, method: str, setting: dict, seed: int, teachers: list[Job],
                    extra: tuple[str, ...] = ()) -> Job:
        folder = folder / f"s{seed}"
        if method == "ce":
            args = ["train", "--model", STUDENT, *self.student[2:]]
        else:
            args = ["distill", *(a for t in teachers for a in ("--teacher", str(t.out / "last.pt"))),
                    "--method", method, *self.student]
        return Job((*args, "--train-size", str(self.a.train_size), *setting_args(setting), *extra, "--seed",
                    str(seed), "--out", str(folder)), folder)


def chosen(study: Study, method: str) -> tuple[int, dict, list[dict]]:
    """The selection's choice for ``method``: (its index, its setting, every setting's record); -1 while the
    selection runs of some setting are unfinished."""
    records, best = [], -1
    grid = settings(method, study.a.settings)
    for i, setting in enumerate(grid):
        val = last_accs(study.out / "select" / method / f"set{i}", "val")
        m = float(sum(val) / len(val)) if val else math.nan
        records.append({"setting": label(setting), "val_acc": val, "mean_val_acc": m})
        if len(val) < len(study.a.select_seeds):
            best = -2
    if best == -1:
        best = max(range(len(records)), key=lambda i: (records[i]["mean_val_acc"], -i))
    return (best, grid[best], records) if best >= 0 else (-1, {}, records)


def recorded(study: Study, methods: list[str], record: Path) -> dict:
    """Each method's choice as :func:`chosen` gives it, read from an earlier record of this script; exits with one
    line where the record is unreadable, lacks a method, or chose from another grid than this run's."""
    try:
        selection = json.loads(record.read_text())["selection"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"Error: --selection {record}: not a record written by this script ({type(e).__name__}: {e}); "
                 "pass the .json it wrote under --figures")
    choice = {}
    for m in methods:
        entry = selection.get(m)
        if entry is None:
            sys.exit(f"Error: --selection {record} has no choice for {m}; drop it from --methods or rerun its "
                     "selection")
        grid = settings(m, study.a.settings)
        tried = [r.get("setting") for r in entry.get("records", [])]
        i = entry.get("chosen", -1)
        if tried != [label(s) for s in grid] or not 0 <= i < len(grid):
            sys.exit(f"Error: --selection {record} chose {m} from {tried}, not from this run's grid "
                     f"{[label(s) for s in grid]}; pass the --settings it was made with")
        choice[m] = (i, grid[i], entry["records"])
    return choice


def slug(name: str) -> str:
    """A folder name for a table row: "fkd, batch 256" -> "fkd-batch256"."""
    return name.replace(", ", "-").replace(" ", "").replace("=", "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/fmnist-verdict"))
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    ap.add_argument("--from", dest="start", default="select", choices=PHASES, help="the first phase to run")
    ap.add_argument("--until", default="ensemble", choices=PHASES, help="the last phase to run")
    ap.add_argument("--selection", type=Path, help="take the chosen settings from this record of an earlier run "
                    "(its FIGURES/NAME.json) instead of from the selection runs")
    ap.add_argument("--name", default="fashion_mnist_verdict", help="the results' file name under --figures")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side")
    ap.add_argument("--threads", type=int, default=1, help="threads per run")
    ap.add_argument("--select-seeds", type=lambda t: [int(s) for s in t.split(",")], default=[0, 1])
    ap.add_argument("--report-seeds", type=lambda t: [int(s) for s in t.split(",")], default=[2, 3, 4])
    ap.add_argument("--methods", default=",".join(["ce", *WEIGHTS, "fkd"]), help="the methods [default: all]")
    ap.add_argument("--settings", type=int, default=3, help="the first N settings of each grid, the same N for "
                    "every method [3: the coarse grid; 6: the full one]")
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--low-labels", type=int, default=500)
    ap.add_argument("--unlabelled", type=int, default=10000)
    ap.add_argument("--ensemble", type=lambda t: sorted({int(e) for e in t.split(",")}), default=[1, 2, 4],
                    help="the ensemble sizes E (at most 4)")
    ap.add_argument("--big-batch", type=int, default=256, help="the recipe rows' large batch (lr scaled linearly)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--eval-batch-size", type=int, default=500)
    ap.add_argument("--data-dir", default="data", help="also looked in: /usr/share/datasets/fashion-mnist")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dry-run", action="store_true", help="print the commands and what is done; run nothing")
    a = ap.parse_args()
    methods = a.methods.split(",")
    unknown = sorted(set(methods) - {"ce", "fkd", *WEIGHTS})
    if unknown or "fkd" not in methods or "kd" not in methods:
        sys.exit(f"Error: --methods must include fkd and kd and name only: ce, fkd, {', '.join(WEIGHTS)}")
    if not set(a.ensemble) <= {1, 2, 3, 4}:
        sys.exit(f"Error: --ensemble sizes must lie in 1..{len(MEMBERS)}, got {a.ensemble}")
    if PHASES.index(a.start) > PHASES.index(a.until):
        sys.exit(f"Error: --from {a.start} comes after --until {a.until}; phases run in the order {', '.join(PHASES)}")
    if a.selection is not None and a.start == "select":
        sys.exit("Error: --selection replaces the select phase; pass --from with a later phase")
    study = Study(a)
    phases = PHASES[PHASES.index(a.start): PHASES.index(a.until) + 1]
    ledger = a.out / "seconds.json"
    seconds = json.loads(ledger.read_text()) if ledger.is_file() else {}

    def run(phase: str, jobs: list[Job]) -> None:
        spent = run_jobs(jobs, a.jobs, a.threads, a.dry_run)
        if spent:
            seconds[phase] = seconds.get(phase, 0.0) + spent
            ledger.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(ledger, json.dumps(seconds) + "\n")

    teacher = study.teacher(TEACHER)
    if set(phases) & {"select", "report", "lowlabel", "recipe"}:
        run("teachers", [teacher])
    if "select" in phases:
        run("select", [study.student_job(a.out / "select" / m / f"set{i}", m, s, seed, [teacher])
                       for m in methods for i, s in enumerate(settings(m, a.settings)) for seed in a.select_seeds])
    choice = recorded(study, methods, a.selection) if a.selection else {m: chosen(study, m) for m in methods}
    ready = all(c[0] >= 0 for c in choice.values())
    pick = {m: c[1] for m, c in choice.items()}
    others = [m for m in methods if m not in ("ce", "kd", "fkd")]
    best_other = max(others, key=lambda m: choice[m][2][choice[m][0]]["mean_val_acc"]) if ready and others else None
    report = lambda m: a.out / "report" / m  # noqa: E731
    if ready and "report" in phases:
        run("report", [study.student_job(report(m), m, pick[m], seed, [teacher]) for m in methods
                       for seed in a.report_seeds])
    low = {}
    if ready and "lowlabel" in phases:
        for m in [*(["ce"] if "ce" in methods else []), "fkd", "kd", *([best_other] if best_other else [])]:
            low[m] = a.out / "lowlabel" / m
            if m != "ce":
                low[f"{m} + unlabelled"] = a.out / "lowlabel" / f"{m}-unlabelled"
        jobs = []
        for name, folder in low.items():
            m = name.split(" ")[0]
            extra = ("--train-size", str(a.low_labels), *(("--transfer-size", str(a.unlabelled))
                                                          if "unlabelled" in name else ()))
            jobs += [study.student_job(folder, m, pick[m], seed, [teacher], extra) for seed in a.report_seeds]
        run("lowlabel", jobs)
    recipe_rows = {}
    if ready and "recipe" in phases:
        fkd, kd = pick["fkd"]["params"], pick["kd"]["params"]
        big = ("--batch-size", str(a.big_batch), "--lr", f"{0.05 * a.big_batch / 64:g}")
        recipe_rows = {
            "fkd, norm_head=1": ("fkd", {"params": {**fkd, "norm_head": 1}}, ()),
            "fkd, reg_power=1": ("fkd", {"params": {**fkd, "reg_power": 1, "feature_reg": fkd["feature_reg"] * 4}},
                                 ()),
            f"fkd, batch {a.big_batch}": ("fkd", {"params": fkd}, big),
            f"kd, batch {a.big_batch}": ("kd", {"params": kd}, big),
        }
        run("recipe", [study.student_job(a.out / "recipe" / slug(name), m, s, seed, [teacher], extra)
                       for name, (m, s, extra) in recipe_rows.items() for seed in a.report_seeds])
    es = tuple(a.ensemble)
    members = study.members()[: max(es)]
    if ready and "ensemble" in phases:
        run("teachers", members)
        run("ensemble", [study.student_job(a.out / "ensemble" / f"{m}-E{e}", m, pick[m], seed, members[:e])
                         for e in es for m in ("fkd", "kd") for seed in a.report_seeds])
    if a.dry_run:
        return
    write_results(study, methods, choice, best_other, recipe_rows, members, es, low, seconds, phases)


def ensemble_accuracy(study: Study, members: list[Job], e: int) -> float | None:
    """The test accuracy of the first ``e`` members' ensemble (mean logits), by ``realdata evaluate``."""
    result = study.out / "ensembles" / f"E{e}.json"
    if not all(m.finished() for m in members[:e]):
        return None
    if not result.is_file():
        result.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([realdata(), "evaluate", *(str(m.out / "last.pt") for m in members[:e]), "--device",
                        study.a.device, "--data-dir", study.a.data_dir, "--json", str(result)], check=True)
    return json.loads(result.read_text())["test_acc"]


def paired(a_dir: Path, b_dir: Path) -> list[float]:
    """Per-seed differences of last-epoch test accuracy, a - b, over the seeds both finished."""
    a = {run.name: row["test_acc"] for run, row in last_rows(a_dir)}
    b = {run.name: row["test_acc"] for run, row in last_rows(b_dir)}
    return [a[s] - b[s] for s in sorted(a.keys() & b.keys())]


def write_results(study: Study, methods: list[str], choice: dict, best_other: str | None, recipe_rows: dict,
                  members: list, es: tuple, low: dict, seconds: dict, phases: list[str]) -> None:
    a, out = study.a, study.out
    source = f"read from {a.selection}" if a.selection else "the selection runs"
    lines = ["# Fashion-MNIST: every method tuned alike (resnet20 -> resnet8)", "",
             f"{a.train_size} labelled images, {a.val_size} validation images, {a.epochs} epochs, batch "
             f"{a.batch_size}; selection seeds {a.select_seeds} (validation), report seeds {a.report_seeds} (test). "
             "Accuracy (%): mean ± 95% interval of the last epoch.", "",
             f"## Selection (validation accuracy; {source})", "",
             "| method | settings tried: mean validation accuracy | chosen |", "|---|---|---|"]
    for m in methods:
        i, _, records = choice[m]
        tried = "; ".join(f"{r['setting']}: {r['mean_val_acc']:.2f}" for r in records)
        lines.append(f"| {m} | {tried} | {records[i]['setting'] if i >= 0 else '(unfinished)'} |")
    summary: dict = {"selection": {m: {"chosen": c[0], "records": c[2]} for m, c in choice.items()},
                     "best_other": best_other, "seconds": seconds,
                     "selection_from": str(a.selection) if a.selection else None}
    if "report" in phases:
        test = {m: last_accs(out / "report" / m) for m in methods}
        lines += ["", "## Test accuracy at the chosen settings", "", "| method | setting | test acc (%) | seeds |",
                  "|---|---|---|---|"]
        for m in sorted(methods, key=lambda m: -(sum(test[m]) / len(test[m]) if test[m] else 0)):
            i = choice[m][0]
            lines.append(f"| {m} | {choice[m][2][i]['setting'] if i >= 0 else '-'} | {fmt(test[m])} | "
                         f"{len(test[m])} |")
        diff = paired(out / "report" / "fkd", out / "report" / "kd")
        lines.append(f"\nFKD - KD, paired by seed: {fmt(diff)} points ({', '.join(f'{d:+.2f}' for d in diff)})")
        summary["test"] = {m: {"acc": v, "mean_ci": mean_ci(v) if v else None} for m, v in test.items()}
        summary["fkd_minus_kd"] = diff
    if recipe_rows:
        lines += ["", "## FKD's recipe choices (report seeds)", "", "| row | test acc (%) | seeds |", "|---|---|---|"]
        summary["recipe"] = {}
        for name in recipe_rows:
            v = last_accs(out / "recipe" / slug(name))
            summary["recipe"][name] = v
            lines.append(f"| {name} | {fmt(v)} | {len(v)} |")
    if "ensemble" in phases:
        own = {m.out.name: (last_row(m.out) or {}).get("test_acc") for m in members}
        curve = {"teacher_ensemble": {str(e): ensemble_accuracy(study, members, e) for e in es}, "members": own}
        lines += ["", "## Teachers that differ: the ensemble curve (report seeds)", "",
                  "Members, in order, with their own test accuracy: "
                  f"{', '.join(f'{n} ({a_:.2f}%)' if a_ is not None else n for n, a_ in own.items())} "
                  "(ARCH-partIof4: trained on quarter I of the training images).",
                  "", "| E | teacher ensemble test acc (%) | FKD | KD | FKD - KD, paired |", "|---|---|---|---|---|"]
        for e in es:
            f, k = (last_accs(out / "ensemble" / f"{m}-E{e}") for m in ("fkd", "kd"))
            curve.setdefault("fkd", {})[str(e)], curve.setdefault("kd", {})[str(e)] = f, k
            t = curve["teacher_ensemble"][str(e)]
            d = paired(out / "ensemble" / f"fkd-E{e}", out / "ensemble" / f"kd-E{e}")
            lines.append(f"| {e} | {'-' if t is None else f'{t:.2f}'} | {fmt(f)} | {fmt(k)} | {fmt(d)} |")
        summary["ensemble"] = curve
        ensemble_figure(curve, a.figures / f"{a.name}.png")
    if low:
        lines += ["", f"## Fewer labels: {a.low_labels} labelled images (report seeds)", "",
                  f"'+ unlabelled': the distillation terms also on {a.unlabelled} unlabelled training images.", "",
                  "| student | test acc (%) | seeds |", "|---|---|---|"]
        summary["lowlabel"] = {}
        for name, folder in low.items():
            v = last_accs(folder)
            summary["lowlabel"][name] = v
            lines.append(f"| {name} | {fmt(v)} | {len(v)} |")
    env_file = next(out.glob("*/*/s*/environment.json"), None) or next(out.glob("*/*/*/s*/environment.json"), None)
    summary["environment"] = json.loads(env_file.read_text()) if env_file else None
    summary["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    spent = json.dumps({k: round(v) for k, v in seconds.items()})
    device = summary["environment"]["device_name"] if summary["environment"] else "?"
    lines.append(f"\nWall time per phase (s, summed over sittings): {spent}; device: {device}.")
    a.figures.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.figures / f"{a.name}.md", "\n".join(lines) + "\n")
    atomic_write_text(a.figures / f"{a.name}.json", json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines))


def ensemble_figure(curve: dict, output: Path) -> None:
    """Last-epoch test accuracy against E: FKD and KD (mean ± 95% interval) and the teacher ensemble."""
    fig = Figure(figsize=(6, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    es = sorted(int(e) for e in curve["teacher_ensemble"])
    for i, m in enumerate(("fkd", "kd")):
        pts = [(e, *mean_ci(curve[m][str(e)])) for e in es if curve[m].get(str(e))]
        if pts:
            x, mu, h = zip(*pts, strict=True)
            ax.errorbar(x, mu, yerr=[0 if v != v else v for v in h], marker="o", capsize=3, color=f"C{i}",
                        label=f"{m.upper()} student")
    te = [(e, curve["teacher_ensemble"][str(e)]) for e in es if curve["teacher_ensemble"][str(e)] is not None]
    if te:
        ax.plot(*zip(*te, strict=True), "k--", marker="s", label="teacher ensemble")
    ax.set_xscale("log", base=2)
    ax.set_xticks(es, [str(e) for e in es])
    ax.set_xlabel("number of teachers E (different architectures, different quarters of the data)")
    ax.set_ylabel("test accuracy (%), last epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    atomic_save_figure(fig, output, 120)


if __name__ == "__main__":
    main()
