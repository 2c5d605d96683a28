"""Reproduce a CIFAR-100 table with ``realdata``: the plan of (pair, method, seed) runs from the suites' data files,
the runs (each resumable), and the report beside the published numbers (scripts/reproduce_cifar100.py's --help says
the layout)."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fkdapp import settings
from fkdapp.errors import UserError
from fkdapp.progress import Progress
from fkdapp.runtime import DeviceError, atomic_write_text
from realdata import distributed
from realdata.checkpoints import RunError, load_model
from realdata.config import ConfigError, TrainConfig
from realdata.data import DataError, cifar_status
from realdata.engine import NonFiniteLoss, run_training
from realdata.evaluate import evaluate_checkpoint
from realdata.jobs import Job
from realdata.methods.plan import method_class, resolve
from realdata.models import MODELS
from realdata.report import report
from realdata.runs import RunDir
from realdata.teachers import TeacherDirError, teacher_checkpoint

DATASET = "cifar100"


@dataclass(frozen=True)
class Column:
    """A column of the table: a realdata method with its weights."""

    title: str
    method: str
    params: dict[str, float] = field(default_factory=dict)
    fields: dict[str, object] = field(default_factory=dict)  # other TrainConfig fields (the optimizer)


#: The suites, their columns and the published numbers: data files beside the per-pair configs.
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "realdata" / "cifar100"
SUITES: dict = json.loads((CONFIGS / "suites.json").read_text())
#: --methods key -> column: its title, realdata method, parameters and training fields (e.g. "optimizer": "dot").
COLUMNS: dict[str, Column] = {k: Column(v["title"], v["method"], v.get("params", {}),
                                       {f: v[f] for f in v if f not in ("title", "method", "params")})
                             for k, v in SUITES["methods"].items()}
#: "teacher->student" -> {method key: published top-1 (%)}, with the source and epoch of each in published.json.
PAPER: dict[str, dict[str, float]] = {}
for _cell in json.loads((CONFIGS / "published.json").read_text())["cells"]:
    PAPER.setdefault(_cell["pair"], {}).setdefault(_cell["method"], _cell["top1"])


def pair_config(key: str, teacher: str, student: str) -> dict | None:
    """The (pair, method) run's TrainConfig fields: the pair's file for a listed pair (None: the method cannot
    distil it here), else the method's own settings for a pair of the user's."""
    listed = any(f"{teacher}->{student}" in suite["pairs"] for name, suite in SUITES.items()
                 if isinstance(suite, dict) and "pairs" in suite)
    m = COLUMNS[key]
    if not listed:
        return {"method": m.method, "params": dict(m.params), **m.fields}
    path = CONFIGS / f"{teacher}-{student}" / f"{key}.json"
    if not path.is_file():
        return None
    fields = json.loads(path.read_text())
    return {k: v for k, v in fields.items() if k not in ("model", "dataset", "teacher_archs")}


@dataclass
class Options:
    """The reproduction's settings, as scripts/reproduce_cifar100.py's flags give them; ``pairs`` and ``methods``
    default to the suite's."""

    out: str
    data_dir: str
    download: bool
    device: str
    epochs: int
    batch_size: int
    seeds: str
    suite: str
    pairs: str | None
    methods: str | None
    teacher_dir: str | None
    dry_run: bool

    def __post_init__(self) -> None:
        suite = SUITES[self.suite]
        self.pairs = self.pairs or ",".join(suite["pairs"])
        self.methods = self.methods or ",".join(suite["methods"])


USER_ERRORS = (ConfigError, RunError, DataError, NonFiniteLoss, DeviceError)


class PlanError(ValueError):
    """A bad flag; the message is one line."""


def say(*args: object) -> None:
    """Print on rank 0 only (under torchrun every rank runs this script)."""
    if distributed.is_main():
        print(*args, flush=True)


# ---------------------------------------------------------------------------------------------------- the plan


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``T->S`` or ``T-S`` (the config folders' spelling, and no shell redirection to quote), comma-separated."""
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        teacher, sep, student = item.partition("->")
        if not sep:
            teacher, sep, student = item.partition("-")
        if not sep:
            raise PlanError(f"--pairs wants TEACHER-STUDENT (or 'TEACHER->STUDENT', quoted) items, got {item!r}")
        for arch in (teacher.strip(), student.strip()):
            if arch not in MODELS:
                raise PlanError(f"unknown model {arch!r} in --pairs; choose from: {', '.join(MODELS)}")
        pairs.append((teacher.strip(), student.strip()))
    if not pairs:
        raise PlanError("--pairs is empty")
    return pairs


def parse_methods(text: str) -> list[str]:
    keys = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [k for k in keys if k not in COLUMNS]
    if unknown or not keys:
        raise PlanError(f"unknown --methods {', '.join(unknown) or '(none)'}; choose from: {', '.join(COLUMNS)}")
    return keys


def parse_seeds(text: str) -> list[int]:
    """The toolkit's one seed grammar (:func:`fkdapp.settings.parse_seeds`): a count N, a range 4-7 or a list."""
    try:
        return settings.parse_seeds(text)
    except ConfigError as e:
        raise PlanError(f"--seeds {e}") from None


@dataclass
class Plan:
    teachers: dict[str, str]  # arch -> checkpoint path
    teacher_jobs: list[Job]
    jobs: list[Job]
    skipped: list[str] = field(default_factory=list)  # "(pair, method): why", each once


def why_skipped(key: str, teacher: str, student: str) -> str:
    """Why a (pair, method) of the suite has no config file: what the method needs that the models do not give."""
    from realdata.methods import gives
    from realdata.models import build

    needs = method_class(COLUMNS[key].method).NEEDS
    lacks = []
    for role, arch, need in (("teacher", teacher, needs.teacher_gives), ("student", student, needs.student)):
        missing = sorted(need - gives(build(arch)))  # each model built once
        if missing:
            lacks.append(f"{role} {arch} gives no {', '.join(missing)} maps")
    return f"{teacher}-{student} {key}: skipped, " + ("; ".join(lacks) if lacks else "no config file for this pair")


def make_plan(args: Options) -> Plan:
    out = Path(args.out).absolute()
    pairs, keys, seeds = parse_pairs(args.pairs), parse_methods(args.methods), parse_seeds(args.seeds)
    common = {"dataset": DATASET, "epochs": args.epochs, "batch_size": args.batch_size, "data_dir": args.data_dir,
              "device": args.device}
    teachers: dict[str, str] = {}
    teacher_jobs = []
    needs_teacher = any(method_class(COLUMNS[k].method).NEEDS.teacher for k in keys)
    for arch in dict.fromkeys(t for t, _ in pairs) if needs_teacher else ():
        if args.teacher_dir is not None:
            try:
                teachers[arch] = str(teacher_checkpoint(Path(args.teacher_dir).absolute(), arch))
            except TeacherDirError as e:
                raise PlanError(str(e)) from None
        else:
            job = Job(f"teacher {arch}", out / "teachers" / arch, TrainConfig(model=arch, seed=0, **common))
            teacher_jobs.append(job)
            teachers[arch] = str(job.out / "last.pt")
    jobs: dict[Path, Job] = {}
    skipped: list[str] = []
    for seed in seeds:
        for teacher, student in pairs:
            for key in keys:
                m = COLUMNS[key]
                if not method_class(m.method).NEEDS.teacher:
                    folder, name = out / "runs" / "ce" / student / f"s{seed}", f"{student} alone, seed {seed}"
                    config = TrainConfig(model=student, seed=seed, **common)
                else:
                    fields = pair_config(key, teacher, student)
                    if fields is None:  # the method cannot distil this pair here (no config file): said, not hidden
                        if seed == seeds[0]:
                            skipped.append(why_skipped(key, teacher, student))
                        continue
                    folder = out / "runs" / key / f"{teacher}-{student}" / f"s{seed}"
                    name = f"{teacher} -> {student} {key}, seed {seed}"
                    config = TrainConfig(model=student, teachers=(teachers[teacher],), teacher_archs=(teacher,),
                                         seed=seed, **common, **fields)
                # its method's rules checked now; a student alone is shared by its pairs
                jobs.setdefault(folder, Job(name, folder, resolve(config).config))
    return Plan(teachers, teacher_jobs, list(jobs.values()), skipped)


# --------------------------------------------------------------------------------------------------- running


def run_job(job: Job, download: bool) -> bool:
    """Train (or resume) one run; False (with the reason printed) if it failed with a user error."""
    state, done = job.status()
    if done:
        say(f"[skip] {job.name}: done ({job.out})")
        return True
    say(f"[run] {job.name}: {state} ({job.out})")

    def log(row: dict) -> None:
        named = ", ".join(f"{k} {v:.4f}" for k, v in row["losses"].items())
        say(f"  epoch {row['epoch']}/{job.config.epochs} loss {row['loss']:.4f} ({named}) test {row['test_acc']:.2f}% "
            f"(best {row['best_acc']:.2f}%) {row['images_per_s']:.0f} img/s")

    try:
        summary = run_training(job.config, job.out, resume=True, download=download,
                               progress=Progress() if sys.stderr.isatty() else None, on_epoch_end=log)
    except USER_ERRORS as e:
        say(f"[failed] {job.name}: {e}")
        return False
    say(f"[done] {job.name}: last {summary['last_acc']:.2f}%, best {summary['best_acc']:.2f}%")
    return True


# ---------------------------------------------------------------------------------------------------- report


def _finished_acc(run: RunDir) -> float | None:
    """The last-epoch test accuracy of a finished run (None if unfinished or absent)."""
    if not run.is_run():
        return None
    rows = run.read_metrics()
    done = rows and rows[-1]["epoch"] >= TrainConfig.load(run.config_path).epochs
    return rows[-1]["test_acc"] if done else None


def _seed_accs(folder: Path) -> list[float]:
    """Last-epoch test accuracies of the finished runs in ``folder``'s seed folders (s0, s1, ...)."""
    accs = [_finished_acc(RunDir(p)) for p in sorted(folder.glob("s*"))]
    return [a for a in accs if a is not None]


def _cell(accs: Sequence[float]) -> str:
    """Mean ± sample std (n seeds), the paper's layout; one seed: "(n = 1)", no spread."""
    if not accs:
        return "-"
    if len(accs) == 1:
        return f"{accs[0]:.2f} (n = 1)"
    return f"{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f} (n = {len(accs)})"


_GIVEN_TEACHER_ACC: dict[str, float | None] = {}


def _teacher_accs(arch: str, path: str, args: Options) -> list[float]:
    """The teacher's last-epoch accuracy if trained here, else the test accuracy of the given checkpoint (once)."""
    if args.teacher_dir is None:
        acc = _finished_acc(RunDir(Path(path).parent))
    else:
        if path not in _GIVEN_TEACHER_ACC:
            try:
                result = evaluate_checkpoint(path, DATASET, arch, args.data_dir, False, args.device)
                _GIVEN_TEACHER_ACC[path] = result["test_acc"]
            except USER_ERRORS as e:
                say(f"[report] cannot evaluate teacher {path}: {e}")
                _GIVEN_TEACHER_ACC[path] = None
        acc = _GIVEN_TEACHER_ACC[path]
    return [] if acc is None else [acc]


def write_report(args: Options, plan: Plan) -> Path:
    """Write OUT/report.md (on rank 0) from the run folders as they are now."""
    out = Path(args.out).absolute()
    path = out / "report.md"
    if not distributed.is_main():
        return path
    pairs, keys = parse_pairs(args.pairs), parse_methods(args.methods)
    columns = ["teacher", *keys] if plan.teachers else keys
    titles = ["teacher", *(COLUMNS[k].title for k in keys)] if plan.teachers else [COLUMNS[k].title for k in keys]
    lines = [f"# CIFAR-100, suite {args.suite} (epochs {args.epochs}, batch {args.batch_size})", "",
             "Top-1 test accuracy (%) at the last epoch: mean ± sample std over the finished seeds (their number in "
             "brackets); the published numbers in the rows below (configs/realdata/cifar100/published.json names each "
             "one's source and whether it is a last- or best-epoch number).",
             "", "| teacher -> student | | " + " | ".join(titles) + " |", "|---|---|" + "---|" * len(titles)]
    teacher_accs = {arch: _teacher_accs(arch, path, args) for arch, path in plan.teachers.items()}
    for teacher, student in pairs:
        ours, paper = [], []
        for col in columns:
            if col == "teacher":
                accs = teacher_accs[teacher]
            elif col == "ce":
                accs = _seed_accs(out / "runs" / "ce" / student)
            else:
                accs = _seed_accs(out / "runs" / col / f"{teacher}-{student}")
            ours.append(_cell(accs))
            known = PAPER.get(f"{teacher}->{student}", {}).get(col)
            paper.append("-" if known is None else f"{known:.2f}")
        lines.append(f"| {teacher} -> {student} | ours | " + " | ".join(ours) + " |")
        lines.append("| | paper | " + " | ".join(paper) + " |")
    for title, folder in (("Students", out / "runs"), ("Teachers trained here", out / "teachers")):
        if folder.is_dir():
            try:
                table = report([folder])
            except RunError as e:
                table = str(e)
            lines += ["", f"## {title}: last and best epoch (realdata report {folder})", "", table]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def dry_run(args: Options, plan: Plan) -> int:
    """The plan's runs with their state, and what they need checked first: the data (present, its archive's MD5)
    and every given teacher (readable, of the architecture its pair names). 0 when all is ready, 1 otherwise."""
    for job in plan.teacher_jobs + plan.jobs:
        say(f"  {job.name}: {job.status()[0]} -> {job.out} (lr {job.config.lr:g})")
    ok, what = cifar_status(DATASET, Path(args.data_dir).absolute())
    say(f"data: {what}" + (" (--download fetches it)" if not ok and args.download else ""))
    ready = ok or args.download
    for arch, path in plan.teachers.items() if args.teacher_dir is not None else ():
        try:
            load_model(path, arch)
            say(f"teacher {arch}: {path} (loads as {arch})")
        except UserError as e:
            say(f"teacher {arch}: {e}")
            ready = False
    say("ready to run" if ready else "not ready: fix the lines above first")
    return 0 if ready else 1


def run(args: Options) -> int:
    """Plan, train what is not finished (teachers first) and write OUT/report.md after every run; the exit status
    (2: a bad flag, said in one line; 1: a run failed)."""
    try:
        plan = make_plan(args)
    except (PlanError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    say(f"{len(plan.teacher_jobs)} teachers to train, {len(plan.jobs)} student runs, {args.epochs} epochs each, "
        f"into {Path(args.out).absolute()}")
    for arch, path in plan.teachers.items():
        if args.teacher_dir is not None:
            say(f"  teacher {arch}: {path}")
    for line in plan.skipped:
        say(f"  {line}")
    if args.dry_run:
        return dry_run(args, plan)
    for job in plan.teacher_jobs:
        if not run_job(job, args.download):
            say("a teacher failed; stopping")
            return 1
    failed = []
    for job in plan.jobs:
        if not run_job(job, args.download):
            failed.append(job.name)
        write_report(args, plan)  # the table so far
    path = write_report(args, plan)
    say(f"report: {path}")
    if failed:
        say(f"{len(failed)} runs failed: {'; '.join(failed)}")
        return 1
    return 0

