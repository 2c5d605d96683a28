"""The converged Fashion-MNIST study: every distillation method for one teacher -> student pair, and the
ensemble-size curve (the real-image twin of the simulation's failure-vs-E law, like the FKD paper's Figure 4).

Runs (each a ``realdata`` command in its own folder under OUT, JOBS at a time at THREADS threads each; every
command passes --resume, so the script can be stopped and run again: finished runs are skipped, unfinished ones
continue from their last.pt):

1. teachers, on the whole training set (60000 images), --teacher-epochs epochs of cross-entropy: resnet20 (seed 0,
   the pair's teacher) and resnet8 seeds 0..max(E)-1 (the ensemble's members, the student's own architecture);
2. students, resnet8 on a fixed class-balanced subset of --train-size images, --epochs epochs (the recipe's
   learning-rate steps scaled to them, so the curves flatten), seeds --seeds:
   - the methods table: ce (alone) and every method from the resnet20 teacher (fkd with and without its
     regulariser);
   - the ensemble curve: fkd and kd from the first E resnet8 teachers, E in --ensemble;
3. the teacher ensembles' own accuracy (``realdata evaluate`` of E checkpoints: mean logits), and the student
   alone's kernel distance to the pair's teacher (``realdata evaluate --kernel-to``), the baseline for the
   kernel-alignment monitor that every distilled run logs.

Writes FIGURES/fashion_mnist_study_{methods,ensemble}.md (``realdata report``: last and best accuracy, mean ± 95%
interval), FIGURES/fashion_mnist_study_alignment.md (per method: last-epoch accuracy and kernel distance to the
teacher, and their rank correlation over methods),
FIGURES/fashion_mnist_study_curves.png (``realdata plot`` of the methods: accuracy per epoch and the kernel
distance to the teacher), FIGURES/fashion_mnist_study_ensemble.png (last-epoch accuracy against E) and
FIGURES/fashion_mnist_study.json (every number, the commands' wall time, the device).

Sized for about 3-4 hours on 2 CPU cores with the defaults (JOBS=2, 1 thread each); needs Fashion-MNIST on disk
(``apt-get install dataset-fashion-mnist``, or the four IDX files under --data-dir).

    python scripts/fashion_mnist_study.py --out runs/fmnist-study --jobs 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fkdapp.runtime import atomic_save_figure, atomic_write_text
from fkdapp.stats import format_mean_ci, mean_ci
from realdata.jobs import Job, last_accs, last_rows, realdata, run_jobs
from realdata.methods import METHODS

STUDENT, PAIR_TEACHER, MEMBER = "resnet8", "resnet20", "resnet8"
#: The methods table's rows: name -> (method, extra flags).
#: The initialisation stage (FT, FSP) scaled with training like the lr milestones: the benchmark's 30 init epochs
#: of 240 epochs are 2.5 of the study's 20, rounded up.
INIT = ["--param", "init_epochs=3"]
#: The study's methods: the CRD benchmark's rows and DKD, as it ran (the methods after DKD have their own check,
#: scripts/fashion_mnist_new_methods.sh).
STUDY_METHODS = ("kd", "dkd", "fkd", "sp", "pkt", "rkd", "at", "fitnet", "crd", "cc", "vid", "nst", "ft", "ab", "fsp")
ROWS: dict[str, tuple[str, list[str]]] = {
    **{m: (m, INIT if "init_epochs" in METHODS[m].PARAMS else []) for m in STUDY_METHODS},
    "fkd-noreg": ("fkd", ["--param", "feature_reg=0"]),
}
ENSEMBLE_METHODS = ("fkd", "kd")


def plan(args: argparse.Namespace) -> tuple[list[Job], list[Job], dict[int, list[Path]]]:
    """The teacher jobs, the student jobs and, per E, the checkpoints of the ensemble's members."""
    out = args.out
    common = ["--dataset", "fashion_mnist", "--data-dir", args.data_dir, "--device", args.device,
              "--batch-size", str(args.batch_size), "--eval-batch-size", str(args.eval_batch_size), "--resume",
              "--no-progress"]
    teacher_size = [] if args.teacher_train_size is None else ["--train-size", str(args.teacher_train_size)]

    def teacher(arch: str, seed: int) -> Job:
        folder = out / "teachers" / f"{arch}-s{seed}"
        return Job(("train", "--model", arch, "--seed", str(seed), "--epochs", str(args.teacher_epochs),
                    *teacher_size, "--out", str(folder), *common), folder)

    members = [teacher(MEMBER, s) for s in range(max(args.ensemble, default=0))]
    teachers = [teacher(PAIR_TEACHER, 0), *members]
    student = ["--epochs", str(args.epochs), "--train-size", str(args.train_size), *common]
    students = []
    for seed in args.seeds:
        s = ["--seed", str(seed)]
        folder = out / "methods" / "ce" / f"s{seed}"
        students.append(Job(("train", "--model", STUDENT, *s, "--out", str(folder), *student), folder))
        for name in args.rows:
            method, extra = ROWS[name]
            folder = out / "methods" / name / f"s{seed}"
            students.append(Job(("distill", "--teacher", str(teachers[0].out / "last.pt"), "--student", STUDENT,
                                 "--method", method, *extra, *s, "--out", str(folder), *student), folder))
        for e in args.ensemble:
            tt = [a for m in members[:e] for a in ("--teacher", str(m.out / "last.pt"))]
            for method in ENSEMBLE_METHODS:
                folder = out / "ensemble" / f"{method}-E{e}" / f"s{seed}"
                students.append(Job(("distill", *tt, "--student", STUDENT, "--method", method, *s, "--out",
                                     str(folder), *student), folder))
    return teachers, students, {e: [m.out / "last.pt" for m in members[:e]] for e in args.ensemble}


def last_distances(folder: Path) -> list[float]:
    """The last epoch's kernel distance D(rho_S, rho_T) (mean over teachers) of every finished run in ``folder``;
    for a run without a teacher, the one ``realdata evaluate --kernel-to`` wrote to its kernel.json."""
    out = []
    for run, row in last_rows(folder):
        d = row.get("kernel_distance") or json.loads((run / "kernel.json").read_text())["kernel_distance"]
        out.append(sum(d) / len(d))
    return out


def alignment_table(table: dict[str, list[float]], distance: dict[str, list[float]]) -> tuple[str, float]:
    """Markdown: per method, last-epoch accuracy and kernel distance to the teacher (mean ± 95% interval); and
    Spearman's rank correlation between the two over the methods' means."""
    from scipy.stats import spearmanr

    acc, dist = {n: mean_ci(v) for n, v in table.items()}, {n: mean_ci(v) for n, v in distance.items()}
    rows = ["| method | last acc (%) | kernel distance to the teacher, last epoch | seeds |", "|---|---|---|---|"]
    for name in sorted(table, key=lambda n: -acc[n][0]):
        rows.append(f"| {name} | {format_mean_ci(table[name])} | {format_mean_ci(distance[name], 4)} | "
                    f"{len(table[name])} |")
    rho = float(spearmanr([acc[n][0] for n in table], [dist[n][0] for n in table])[0])
    rows.append(f"\nSpearman rank correlation over the {len(table)} methods (accuracy, distance): {rho:.2f}")
    return "\n".join(rows), rho


def ensemble_figure(curve: dict, output: Path, title: str) -> None:
    """Last-epoch accuracy against the number of teachers: FKD and KD (mean ± 95% interval), the student alone and
    the teacher ensemble itself."""
    fig = Figure(figsize=(6, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    es = sorted(int(e) for e in curve["teacher_ensemble"])
    for i, method in enumerate(ENSEMBLE_METHODS):
        pts = [(e, *curve[method][str(e)]) for e in es if curve[method].get(str(e)) is not None]
        if pts:
            x, m, h = zip(*pts, strict=True)
            ax.errorbar(x, m, yerr=[0 if v != v else v for v in h], marker="o", capsize=3, color=f"C{i}",
                        label=f"{method.upper()} student")
    ax.plot(es, [curve["teacher_ensemble"][str(e)] for e in es], "k--", marker="s", label="teacher ensemble")
    alone = curve["student_alone"][0]
    if alone == alone:
        ax.axhline(alone, color="gray", lw=1, label="student alone")
    ax.set_xscale("log", base=2)
    ax.set_xticks(es, [str(e) for e in es])
    ax.set_xlabel("number of teachers E")
    ax.set_ylabel("test accuracy (%), last epoch")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    atomic_save_figure(fig, output, 120)


def parse_seeds(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b or a) + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/fmnist-study"))
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side")
    ap.add_argument("--threads", type=int, default=1, help="threads per run")
    ap.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-4"))
    ap.add_argument("--ensemble", type=lambda t: sorted({int(e) for e in t.split(",") if t != "none"}),
                    default=[1, 2, 4], help="the ensemble curve's E values, or none (no curve)")
    ap.add_argument("--train-size", type=int, default=2000, help="the students' class-balanced subset")
    ap.add_argument("--epochs", type=int, default=20, help="student epochs")
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--teacher-train-size", type=int, default=None, help="[default: the whole training set]")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--eval-batch-size", type=int, default=500)
    ap.add_argument("--data-dir", default="data", help="also looked in: /usr/share/datasets/fashion-mnist")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=None, help="comma list of the methods table's rows [default: all]: "
                    + ", ".join(ROWS))
    ap.add_argument("--dry-run", action="store_true", help="print the commands and what is done; run nothing")
    args = ap.parse_args()
    args.rows = list(ROWS) if args.methods is None else args.methods.split(",")
    unknown = sorted(set(args.rows) - set(ROWS))
    if unknown:
        sys.exit(f"Error: unknown method {', '.join(unknown)} for --methods; choose from {', '.join(ROWS)}")
    teachers, students, members = plan(args)
    spent = {"teachers": run_jobs(teachers, args.jobs, args.threads, args.dry_run)}
    spent["students"] = run_jobs(students, args.jobs, args.threads, args.dry_run)
    if args.dry_run:
        return
    ledger = args.out / "seconds.json"  # wall time summed over the sittings that ran something
    seconds = json.loads(ledger.read_text()) if ledger.is_file() else {"teachers": 0.0, "students": 0.0}
    seconds = {k: seconds[k] + v for k, v in spent.items()}
    atomic_write_text(ledger, json.dumps(seconds) + "\n")
    ensembles = {}
    for e, paths in members.items():
        result = args.out / "ensembles" / f"E{e}.json"
        if not result.is_file():
            result.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([realdata(), "evaluate", *map(str, paths), "--device", args.device, "--data-dir",
                            args.data_dir, "--json", str(result)], check=True)
        ensembles[str(e)] = json.loads(result.read_text())["test_acc"]
    for folder, _ in last_rows(args.out / "methods" / "ce"):
        if not (folder / "kernel.json").is_file():
            subprocess.run([realdata(), "evaluate", str(folder / "last.pt"), "--kernel-to",
                            str(teachers[0].out / "last.pt"), "--device", args.device, "--data-dir", args.data_dir,
                            "--json", str(folder / "kernel.json")], check=True)
    run = [realdata()]
    args.figures.mkdir(parents=True, exist_ok=True)
    subprocess.run([*run, "report", str(args.out / "teachers"), str(args.out / "methods"), "--output",
                    str(args.figures / "fashion_mnist_study_methods.md")], check=True)
    parts = ["methods", "alignment", *(["ensemble"] if args.ensemble else [])]
    if args.ensemble:
        subprocess.run([*run, "report", str(args.out / "methods" / "ce"), str(args.out / "ensemble"), "--output",
                        str(args.figures / "fashion_mnist_study_ensemble.md")], check=True)
    subprocess.run([*run, "plot", str(args.out / "methods"), "-o", str(args.figures / "fashion_mnist_study_curves.png"),
                    "--title", f"Fashion-MNIST, {args.train_size} training images, {PAIR_TEACHER} -> {STUDENT} "
                    f"(mean ± std over {len(args.seeds)} seeds)"], check=True)
    curve = {"teacher_ensemble": ensembles, "student_alone": mean_ci(last_accs(args.out / "methods" / "ce")),
             **{m: {str(e): mean_ci(last_accs(args.out / "ensemble" / f"{m}-E{e}")) for e in args.ensemble}
                for m in ENSEMBLE_METHODS}}
    names = ["ce", *args.rows]
    accs = {name: last_accs(args.out / "methods" / name) for name in names}
    distances = {name: last_distances(args.out / "methods" / name) for name in names}
    alignment, rho = alignment_table(accs, distances)
    atomic_write_text(args.figures / "fashion_mnist_study_alignment.md", alignment + "\n")
    table = {name: mean_ci(a) for name, a in accs.items()}
    env = json.loads((args.out / "methods" / "ce" / f"s{args.seeds[0]}" / "environment.json").read_text())
    if args.ensemble:
        ensemble_figure(curve, args.figures / "fashion_mnist_study_ensemble.png",
                        f"Fashion-MNIST, {args.train_size} training images: {STUDENT} students of E {MEMBER} teachers")
    summary = {"methods_last_acc": table, "methods_kernel_distance": {n: mean_ci(d) for n, d in distances.items()},
               "spearman_acc_distance": rho, "ensemble_curve": curve, "seconds": seconds,
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "environment": env}
    atomic_write_text(args.figures / "fashion_mnist_study.json", json.dumps(summary, indent=2) + "\n")
    for part in parts:
        print((args.figures / f"fashion_mnist_study_{part}.md").read_text())
    print(json.dumps(curve, indent=2))


if __name__ == "__main__":
    main()
