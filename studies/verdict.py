"""The fair verdict on real images: every method tuned with one budget on a validation split, then reported on
fresh seeds (the design, budgets and rules: scripts/fashion_mnist_verdict.py's --help)."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from fkdapp.errors import UserError
from fkdapp.runtime import atomic_write_text
from fkdapp.stats import format_mean_ci as fmt
from fkdapp.stats import mean_ci
from realdata.config import TrainConfig
from realdata.jobs import Job, Ledger, last_accs, last_row, last_rows, realdata
from realdata.methods import METHODS
from studies.figures import ensemble_figure
from studies.select import choose

STUDENT, TEACHER = "resnet8", "resnet20"
MEMBERS = ("resnet20", "wrn_16_2", "vgg8", "resnet14")
FACTORS = (0.25, 1.0, 4.0, 0.5, 2.0, 8.0)  # the coarse grid first
#: The methods tuned by scaling their weights (each method declares the parameters its weight scales: WEIGHTS on
#: its class; DKD: both of its terms), in the order the verdict lists them.
WEIGHTED = ("kd", "dkd", "sp", "pkt", "rkd", "at", "fitnet", "crd", "dist", "wttm", "ctkd", "mlkd", "reviewkd", "ofd")
FKD_GRID = [(lam, reg) for reg in (1e-4, 1e-3) for lam in (25.0, 100.0, 400.0)]
BASE_WD = 5e-4
PHASES = ["select", "report", "lowlabel", "recipe", "ensemble"]  # in order of what the verdict needs most


@dataclass
class Options:
    """The study's settings, as scripts/fashion_mnist_verdict.py's flags give them (its --help says each)."""

    out: Path
    figures: Path
    start: str
    until: str
    selection: Path | None
    name: str
    jobs: int
    threads: int
    select_seeds: list[int]
    report_seeds: list[int]
    methods: str
    settings: int
    train_size: int
    val_size: int
    low_labels: int
    unlabelled: int
    ensemble: list[int]
    big_batch: int
    epochs: int
    teacher_epochs: int
    batch_size: int
    eval_batch_size: int
    data_dir: str
    device: str
    dry_run: bool


def settings(method: str, first: int = 6) -> list[dict]:
    """The method's selection grid (its ``first`` settings): each as {"params": {...}} (the method's) and/or
    {"fields": {...}} (the run's config: ce's weight decay)."""
    if method == "ce":
        grid = [{"fields": {"weight_decay": float(f"{BASE_WD * f:g}")}} for f in FACTORS]
    elif method == "fkd":
        grid = [{"params": {"lambda": lam, "feature_reg": reg}} for lam, reg in FKD_GRID]
    else:
        grid = [{"params": {p: METHODS[method].PARAMS[p] * f for p in METHODS[method].WEIGHTS}} for f in FACTORS]
    return grid[:first]


def label(setting: dict) -> str:
    """A setting as the record names it: "kd_weight=0.225", "weight-decay=0.000125" (a config field, as its flag)."""
    return ",".join([*(f"{k}={v:g}" for k, v in setting.get("params", {}).items()),
                     *(f"{k.replace('_', '-')}={v:g}" for k, v in setting.get("fields", {}).items())]) or "default"


class Study:
    """The study's folders and runs, each a :class:`realdata.jobs.Job` of its config."""

    def __init__(self, a: Options) -> None:
        self.a, self.out = a, a.out
        self.common = {"dataset": "fashion_mnist", "data_dir": a.data_dir, "device": a.device,
                       "eval_batch_size": a.eval_batch_size, "batch_size": a.batch_size}

    def teacher(self, arch: str, part: str | None = None) -> Job:
        name = arch if part is None else f"{arch}-part{part.replace('/', 'of')}"
        return Job(f"teacher {name}", self.out / "teachers" / name,
                   TrainConfig(model=arch, seed=0, epochs=self.a.teacher_epochs, train_part=part, **self.common))

    def members(self) -> list[Job]:
        return [self.teacher(arch, f"{i + 1}/4") for i, arch in enumerate(MEMBERS)]

    def student_job(self, folder: Path, method: str, setting: dict, seed: int, teachers: list[Job],
                    extra: dict | None = None) -> Job:
        """``method`` at ``setting`` on ``seed`` (``extra``: config fields that change the run: a smaller training
        set, unlabelled images, a bigger batch)."""
        fields = {**self.common, "model": STUDENT, "method": method, "epochs": self.a.epochs,
                  "val_size": self.a.val_size, "train_size": self.a.train_size, "seed": seed,
                  "params": dict(setting.get("params", {})), **setting.get("fields", {}), **(extra or {}),
                  "teachers": () if method == "ce" else tuple(str(t.out / "last.pt") for t in teachers)}
        return Job(f"{method} {label(setting)} seed {seed}", folder / f"s{seed}", TrainConfig(**fields))


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
    if best == -1:  # the highest mean validation accuracy; ties: the earlier setting
        best = choose(dict(enumerate(records)), lambda r: True, "mean_val_acc", highest=True)
    return (best, grid[best], records) if best >= 0 else (-1, {}, records)


def recorded(study: Study, methods: list[str], record: Path, complete: bool = True) -> dict:
    """Each method's choice as :func:`chosen` gives it, read from an earlier record of this script; exits with one
    line where the record is unreadable, chose from another grid than this run's, or (``complete``) lacks a method;
    without ``complete`` the methods it lacks are left out (their selection runs here)."""
    try:
        selection = json.loads(record.read_text())["selection"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"--selection {record}: not a record written by this script ({type(e).__name__}: {e}); "
                        "pass the .json it wrote under --figures") from None
    choice = {}
    for m in methods:
        entry = selection.get(m)
        if entry is None and not complete:
            continue
        if entry is None:
            raise UserError(f"--selection {record} has no choice for {m}; drop it from --methods or rerun its "
                     "selection")
        grid = settings(m, study.a.settings)
        tried = [r.get("setting") for r in entry.get("records", [])]
        i = entry.get("chosen", -1)
        if tried != [label(s) for s in grid] or not 0 <= i < len(grid):
            raise UserError(f"--selection {record} chose {m} from {tried}, not from this run's grid "
                     f"{[label(s) for s in grid]}; pass the --settings it was made with")
        choice[m] = (i, grid[i], entry["records"])
    return choice


def slug(name: str) -> str:
    """A folder name for a table row: "fkd, batch 256" -> "fkd-batch256"."""
    return name.replace(", ", "-").replace(" ", "").replace("=", "")


def check_options(a: Options) -> list[str]:
    """The methods of ``a`` (one UserError line for methods, ensemble sizes or phases it cannot run)."""
    methods = a.methods.split(",")
    unknown = sorted(set(methods) - {"ce", "fkd", *WEIGHTED})
    if unknown or "fkd" not in methods or "kd" not in methods:
        raise UserError(f"--methods must include fkd and kd and name only: ce, fkd, {', '.join(WEIGHTED)}")
    if not set(a.ensemble) <= {1, 2, 3, 4}:
        raise UserError(f"--ensemble sizes must lie in 1..{len(MEMBERS)}, got {a.ensemble}")
    if PHASES.index(a.start) > PHASES.index(a.until):
        raise UserError(f"--from {a.start} comes after --until {a.until}; phases run in the order {', '.join(PHASES)}")
    return methods


def lowlabel_rows(study: Study, methods: list[str], best_other: str | None) -> dict[str, Path]:
    """The fewer-labels table's rows (name -> folder): the student alone, FKD, KD and the best other method, each
    distilling also unlabelled images ('+ unlabelled')."""
    rows = {}
    for m in [*(["ce"] if "ce" in methods else []), "fkd", "kd", *([best_other] if best_other else [])]:
        rows[m] = study.out / "lowlabel" / m
        if m != "ce":
            rows[f"{m} + unlabelled"] = study.out / "lowlabel" / f"{m}-unlabelled"
    return rows


def lowlabel_jobs(study: Study, rows: dict[str, Path], pick: dict, teacher: Job) -> list[Job]:
    a = study.a
    jobs = []
    for name, folder in rows.items():
        m = name.split(" ")[0]
        extra = {"train_size": a.low_labels, **({"transfer_size": a.unlabelled} if "unlabelled" in name else {})}
        jobs += [study.student_job(folder, m, pick[m], seed, [teacher], extra) for seed in a.report_seeds]
    return jobs


def recipe_rows(a: Options, pick: dict) -> dict[str, tuple[str, dict, dict]]:
    """FKD's recipe choices (name -> method, setting, config fields): its head on unit features, the regulariser's
    first power, and FKD and KD at a bigger batch (lr scaled with it)."""
    fkd, kd = pick["fkd"]["params"], pick["kd"]["params"]
    big = {"batch_size": a.big_batch, "lr": float(f"{0.05 * a.big_batch / 64:g}")}
    return {
        "fkd, norm_head=1": ("fkd", {"params": {**fkd, "norm_head": True}}, {}),
        "fkd, reg_power=1": ("fkd", {"params": {**fkd, "reg_power": 1, "feature_reg": fkd["feature_reg"] * 4}}, {}),
        f"fkd, batch {a.big_batch}": ("fkd", {"params": fkd}, big),
        f"kd, batch {a.big_batch}": ("kd", {"params": kd}, big),
    }


def selection_source(a: Options, given: dict) -> str:
    """Where the choices came from, as the record says it."""
    if not a.selection:
        return "the selection runs"
    return f"read from {a.selection}" + ("" if a.start != "select" else
                                         f" for {', '.join(given)}; the selection runs for the others")


def run(a: Options) -> None:
    """The study's phases from ``a.start`` to ``a.until`` (each run resumes; finished runs are skipped), then its
    tables, record and figure."""
    methods, study = check_options(a), Study(a)
    ledger = Ledger(a.out / "seconds.json", a.jobs, a.threads, a.dry_run)
    phases = PHASES[PHASES.index(a.start): PHASES.index(a.until) + 1]
    teacher = study.teacher(TEACHER)
    if set(phases) & {"select", "report", "lowlabel", "recipe"}:
        ledger.run("teachers", [teacher])
    # --selection with the select phase: the record's choices where it has them, selection runs for the others
    given = recorded(study, methods, a.selection, complete=a.start != "select") if a.selection else {}
    if "select" in phases:
        ledger.run("select", [study.student_job(a.out / "select" / m / f"set{i}", m, s, seed, [teacher])
                              for m in methods if m not in given for i, s in enumerate(settings(m, a.settings))
                              for seed in a.select_seeds])
    choice = {m: given[m] if m in given else chosen(study, m) for m in methods}
    ready = all(c[0] >= 0 for c in choice.values())
    pick = {m: c[1] for m, c in choice.items()}
    others = [m for m in methods if m not in ("ce", "kd", "fkd")]
    best_other = max(others, key=lambda m: choice[m][2][choice[m][0]]["mean_val_acc"]) if ready and others else None
    if ready and "report" in phases:  # seed by seed: a report stopped early has every method on the same seeds
        ledger.run("report", [study.student_job(a.out / "report" / m, m, pick[m], seed, [teacher])
                              for seed in a.report_seeds for m in methods])
    low = lowlabel_rows(study, methods, best_other) if ready and "lowlabel" in phases else {}
    if low:
        ledger.run("lowlabel", lowlabel_jobs(study, low, pick, teacher))
    recipe = recipe_rows(a, pick) if ready and "recipe" in phases else {}
    if recipe:
        ledger.run("recipe", [study.student_job(a.out / "recipe" / slug(name), m, s, seed, [teacher], extra)
                              for name, (m, s, extra) in recipe.items() for seed in a.report_seeds])
    es, members = tuple(a.ensemble), study.members()[: max(a.ensemble)]
    if ready and "ensemble" in phases:
        ledger.run("teachers", members)
        ledger.run("ensemble", [study.student_job(a.out / "ensemble" / f"{m}-E{e}", m, pick[m], seed, members[:e])
                                for e in es for m in ("fkd", "kd") for seed in a.report_seeds])
    if not a.dry_run:
        write_results(study, methods, choice, selection_source(a, given), best_other, recipe, members, es, low,
                      ledger.seconds, phases)


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


def write_results(study: Study, methods: list[str], choice: dict, source: str, best_other: str | None,
                  recipe_rows: dict, members: list, es: tuple, low: dict, seconds: dict, phases: list[str]) -> None:
    """The tables, the record and the figure of the phases run; ``source``: where the selection came from."""
    a, out = study.a, study.out
    summary: dict = {"selection": {m: {"chosen": c[0], "records": c[2]} for m, c in choice.items()},
                     "best_other": best_other, "seconds": seconds,
                     "selection_from": str(a.selection) if a.selection else None}
    lines = selection_section(a, methods, choice, source)
    if "report" in phases:
        lines += report_section(out, methods, choice, summary)
    if recipe_rows:
        lines += rows_section(recipe_rows, summary, "recipe",
                              ["", "## FKD's recipe choices (report seeds)", "", "| row | test acc (%) | seeds |",
                               "|---|---|---|"], folder=lambda name: out / "recipe" / slug(name))
    if "ensemble" in phases:
        lines += ensemble_section(study, members, es, summary)
    if low:
        lines += rows_section(low, summary, "lowlabel",
                              ["", f"## Fewer labels: {a.low_labels} labelled images (report seeds)", "",
                               f"'+ unlabelled': the distillation terms also on {a.unlabelled} unlabelled training "
                               "images.", "", "| student | test acc (%) | seeds |", "|---|---|---|"],
                              folder=lambda name: low[name])
    env_file = next(out.glob("*/*/s*/environment.json"), None) or next(out.glob("*/*/*/s*/environment.json"), None)
    summary["environment"] = json.loads(env_file.read_text()) if env_file else None
    summary["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(a).items()}
    spent = json.dumps({k: round(v) for k, v in seconds.items()})
    device = summary["environment"]["device_name"] if summary["environment"] else "?"
    lines.append(f"\nWall time per phase (s, summed over sittings): {spent}; device: {device}.")
    a.figures.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.figures / f"{a.name}.md", "\n".join(lines) + "\n")
    atomic_write_text(a.figures / f"{a.name}.json", json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines))


def selection_section(a: Options, methods: list[str], choice: dict, source: str) -> list[str]:
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
    return lines


def report_section(out: Path, methods: list[str], choice: dict, summary: dict) -> list[str]:
    test = {m: last_accs(out / "report" / m) for m in methods}
    lines = ["", "## Test accuracy at the chosen settings", "", "| method | setting | test acc (%) | seeds |",
             "|---|---|---|---|"]
    for m in sorted(methods, key=lambda m: -(sum(test[m]) / len(test[m]) if test[m] else 0)):
        i = choice[m][0]
        lines.append(f"| {m} | {choice[m][2][i]['setting'] if i >= 0 else '-'} | {fmt(test[m])} | {len(test[m])} |")
    diff = paired(out / "report" / "fkd", out / "report" / "kd")
    lines.append(f"\nFKD - KD, paired by seed: {fmt(diff)} points ({', '.join(f'{d:+.2f}' for d in diff)})")
    summary["test"] = {m: {"acc": v, "mean_ci": mean_ci(v) if v else None} for m, v in test.items()}
    summary["fkd_minus_kd"] = diff
    return lines


def rows_section(rows: dict, summary: dict, key: str, header: list[str], folder) -> list[str]:
    """A table of named rows, each the last-epoch test accuracy of the runs in ``folder(name)``."""
    lines, summary[key] = list(header), {}
    for name in rows:
        v = last_accs(folder(name))
        summary[key][name] = v
        lines.append(f"| {name} | {fmt(v)} | {len(v)} |")
    return lines


def ensemble_section(study: Study, members: list, es: tuple, summary: dict) -> list[str]:
    a, out = study.a, study.out
    own = {m.out.name: (last_row(m.out) or {}).get("test_acc") for m in members}
    curve = {"teacher_ensemble": {str(e): ensemble_accuracy(study, members, e) for e in es}, "members": own}
    lines = ["", "## Teachers that differ: the ensemble curve (report seeds)", "",
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
    points = {m: {e: mean_ci(v) if (v := curve[m].get(str(e))) else None for e in es} for m in ("fkd", "kd")}
    ensemble_figure(points, {e: curve["teacher_ensemble"][str(e)] for e in es}, a.figures / f"{a.name}.png",
                    "number of teachers E (different architectures, different quarters of the data)")
    return lines
