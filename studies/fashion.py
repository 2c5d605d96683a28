"""The converged Fashion-MNIST study: every method against one teacher, the kernel alignment, the ensemble curve
(the design: scripts/fashion_mnist_study.py's --help)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fkdapp.errors import UserError
from fkdapp.runtime import atomic_write_text
from fkdapp.stats import format_mean_ci, mean_ci
from realdata.config import TrainConfig
from realdata.jobs import Job, Ledger, last_accs, last_rows, realdata
from realdata.methods import METHODS
from studies.figures import ensemble_figure

STUDENT, PAIR_TEACHER, MEMBER = "resnet8", "resnet20", "resnet8"
#: The methods table's rows: name -> (method, its parameters beside the defaults).
#: The initialisation stage (FT, FSP) scaled with training like the lr milestones: the benchmark's 30 init epochs
#: of 240 epochs are 2.5 of the study's 20, rounded up.
INIT = {"init_epochs": 3.0}
#: The study's methods: the CRD benchmark's rows and DKD, as it ran (the methods after DKD have their own check,
#: scripts/fashion_mnist_new_methods.sh).
STUDY_METHODS = ("kd", "dkd", "fkd", "sp", "pkt", "rkd", "at", "fitnet", "crd", "cc", "vid", "nst", "ft", "ab", "fsp")
ROWS: dict[str, tuple[str, dict[str, float]]] = {
    **{m: (m, INIT if "init_epochs" in METHODS[m].PARAMS else {}) for m in STUDY_METHODS},
    "fkd-noreg": ("fkd", {"feature_reg": 0.0}),
}
ENSEMBLE_METHODS = ("fkd", "kd")


@dataclass
class Options:
    """The study's settings, as scripts/fashion_mnist_study.py's flags give them; ``rows`` (the methods table's rows)
    derived from ``methods`` and checked here."""

    out: Path
    figures: Path
    jobs: int
    threads: int
    seeds: list[int]
    ensemble: list[int]
    train_size: int
    epochs: int
    teacher_epochs: int
    teacher_train_size: int | None
    batch_size: int
    eval_batch_size: int
    data_dir: str
    device: str
    methods: str | None
    dry_run: bool
    rows: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = list(ROWS) if self.methods is None else self.methods.split(",")
        unknown = sorted(set(self.rows) - set(ROWS))
        if unknown:
            raise UserError(f"unknown method {', '.join(unknown)} for --methods; choose from {', '.join(ROWS)}")


def plan(args: Options) -> tuple[list[Job], list[Job], dict[int, list[Path]]]:
    """The teacher jobs, the student jobs and, per E, the checkpoints of the ensemble's members."""
    out = args.out
    common = {"dataset": "fashion_mnist", "data_dir": args.data_dir, "device": args.device,
              "batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size}

    def teacher(arch: str, seed: int) -> Job:
        return Job(f"teacher {arch} seed {seed}", out / "teachers" / f"{arch}-s{seed}",
                   TrainConfig(model=arch, seed=seed, epochs=args.teacher_epochs, train_size=args.teacher_train_size,
                               **common))

    def student(name: str, folder: Path, seed: int, method: str = "ce", params: dict | None = None,
                teachers: list[Job] = ()) -> Job:
        return Job(f"{name} seed {seed}", folder / f"s{seed}", TrainConfig(
            model=STUDENT, method=method, params=dict(params or {}), seed=seed, epochs=args.epochs,
            train_size=args.train_size, teachers=tuple(str(t.out / "last.pt") for t in teachers), **common))

    members = [teacher(MEMBER, s) for s in range(max(args.ensemble, default=0))]
    teachers = [teacher(PAIR_TEACHER, 0), *members]
    students = []
    for seed in args.seeds:
        students.append(student(f"{STUDENT} alone", out / "methods" / "ce", seed))
        for name in args.rows:
            method, params = ROWS[name]
            students.append(student(name, out / "methods" / name, seed, method, params, teachers[:1]))
        for e in args.ensemble:
            for method in ENSEMBLE_METHODS:
                students.append(student(f"{method} E {e}", out / "ensemble" / f"{method}-E{e}", seed, method,
                                        teachers=members[:e]))
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


def run(a: Options) -> None:
    """The teachers and students (each run resumes), then the tables, the record and the figures."""
    teachers, students, members = plan(a)
    ledger = Ledger(a.out / "seconds.json", a.jobs, a.threads, a.dry_run, ("teachers", "students"))
    ledger.run("teachers", teachers)
    ledger.run("students", students)
    if a.dry_run:
        return
    ensembles = evaluate_ensembles(a, members)
    kernels_of_alone(a, teachers[0].out / "last.pt")
    write_reports(a)
    curve = {"teacher_ensemble": ensembles, "student_alone": mean_ci(last_accs(a.out / "methods" / "ce")),
             **{m: {str(e): mean_ci(last_accs(a.out / "ensemble" / f"{m}-E{e}")) for e in a.ensemble}
                for m in ENSEMBLE_METHODS}}
    accs = {name: last_accs(a.out / "methods" / name) for name in ["ce", *a.rows]}
    distances = {name: last_distances(a.out / "methods" / name) for name in accs}
    alignment, rho = alignment_table(accs, distances)
    atomic_write_text(a.figures / "fashion_mnist_study_alignment.md", alignment + "\n")
    if a.ensemble:
        ensemble_figure({m: {e: tuple(curve[m][str(e)]) for e in a.ensemble} for m in ENSEMBLE_METHODS},
                        {e: ensembles[str(e)] for e in a.ensemble}, a.figures / "fashion_mnist_study_ensemble.png",
                        "number of teachers E", alone=curve["student_alone"][0],
                        title=f"Fashion-MNIST, {a.train_size} training images: {STUDENT} students of E {MEMBER} "
                              "teachers")
    env = json.loads((a.out / "methods" / "ce" / f"s{a.seeds[0]}" / "environment.json").read_text())
    summary = {"methods_last_acc": {name: mean_ci(v) for name, v in accs.items()},
               "methods_kernel_distance": {n: mean_ci(d) for n, d in distances.items()},
               "spearman_acc_distance": rho, "ensemble_curve": curve, "seconds": ledger.seconds,
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(a).items()},
               "environment": env}
    atomic_write_text(a.figures / "fashion_mnist_study.json", json.dumps(summary, indent=2) + "\n")
    for part in ["methods", "alignment", *(["ensemble"] if a.ensemble else [])]:
        print((a.figures / f"fashion_mnist_study_{part}.md").read_text())
    print(json.dumps(curve, indent=2))


def _realdata(*args: str | Path) -> None:
    """One ``realdata`` command, as a user runs it."""
    subprocess.run([realdata(), *map(str, args)], check=True)


def evaluate_ensembles(a: Options, members: dict[int, list[Path]]) -> dict[str, float]:
    """Per E, the test accuracy of the first E member teachers' ensemble (mean logits; evaluated once, kept)."""
    ensembles = {}
    for e, paths in members.items():
        result = a.out / "ensembles" / f"E{e}.json"
        if not result.is_file():
            result.parent.mkdir(parents=True, exist_ok=True)
            _realdata("evaluate", *paths, "--device", a.device, "--data-dir", a.data_dir, "--json", result)
        ensembles[str(e)] = json.loads(result.read_text())["test_acc"]
    return ensembles


def kernels_of_alone(a: Options, teacher: Path) -> None:
    """The kernel distance of every student trained alone to ``teacher`` (its kernel.json; written once)."""
    for folder, _ in last_rows(a.out / "methods" / "ce"):
        if not (folder / "kernel.json").is_file():
            _realdata("evaluate", folder / "last.pt", "--kernel-to", teacher, "--device", a.device, "--data-dir",
                      a.data_dir, "--json", folder / "kernel.json")


def write_reports(a: Options) -> None:
    """``realdata report`` of the methods (and the ensemble's students) and ``realdata plot`` of their curves."""
    a.figures.mkdir(parents=True, exist_ok=True)
    _realdata("report", a.out / "teachers", a.out / "methods", "--output", a.figures / "fashion_mnist_study_methods.md")
    if a.ensemble:
        _realdata("report", a.out / "methods" / "ce", a.out / "ensemble", "--output",
                  a.figures / "fashion_mnist_study_ensemble.md")
    _realdata("plot", a.out / "methods", "-o", a.figures / "fashion_mnist_study_curves.png", "--title",
              f"Fashion-MNIST, {a.train_size} training images, {PAIR_TEACHER} -> {STUDENT} (mean ± std over "
              f"{len(a.seeds)} seeds)")
