"""Experiments: populations of networks trained and measured -> typed results (:mod:`multiview.records`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from fkdapp.errors import UserError
from fkdapp.lock import FolderLock
from fkdapp.runtime import atomic_save, check_writable, environment
from multiview.config import Config
from multiview.data import MultiViewData, derive_seed, make_data
from multiview.decompose import law
from multiview.distill import Student, Targets, student_objective, students_for
from multiview.engine import Engine, SharedProgress
from multiview.measure import (
    covered,
    ensemble_report,
    error_report,
    lottery_summary,
    threshold_text,
    train_accuracy,
    views_learned,
)
from multiview.methods import StudentMethod, parse_method
from multiview.population import evaluate, init_weights, union_network, view_correlations
from multiview.records import (
    DistillResults,
    EnsembleRecord,
    NetworkRecord,
    PopulationResults,
    StudentRecord,
    read_distill,
    write_results,
)
from multiview.train import TrainLog, cross_entropy, train

T = TypeVar("T")

# seed streams (derive_seed(seed, stream, index)): 0 data, 1 teacher/network inits, 2 student init, 3 batches
NETWORK_STREAM, STUDENT_STREAM, BATCH_STREAM = 1, 2, 3
#: Student steps at which the gradient balance and the view correlations are recorded (they leave training as is).
PROBE_STEPS = (0, 10, 25, 50, 75, 100, 125, 150, 200, 300, 400, 600)


def network_seeds(seed: int, count: int) -> list[int]:
    return [derive_seed(seed, NETWORK_STREAM, i) for i in range(count)]


def train_groups(engine: Engine, items: Sequence[T], train_group: Callable[[list[T]], tuple[torch.Tensor, TrainLog]]
                 ) -> tuple[torch.Tensor, TrainLog]:
    """``items`` (networks' seeds, students) trained by ``train_group`` in fixed groups, then put back in order:
    each item alone (exact; ``engine.workers`` at a time), or all in one population (batched)."""
    groups = [list(items)] if engine.batched else [[item] for item in items]
    done = engine.map([lambda g=g: train_group(g) for g in groups])
    return torch.cat([w for w, _ in done]), TrainLog.concat([log for _, log in done])


def train_networks(
    cfg: Config, data: MultiViewData, seeds: list[int], engine: Engine, progress: Callable[[int], None] | None = None
) -> tuple[torch.Tensor, TrainLog]:
    """Networks trained with cross-entropy under the stop-after-fit rule, from the initialisations ``seeds``; a group
    draws its batches from the generator of its first network's seed (exact: the network's own)."""
    device, y = data.features.device, data.train.y

    def group(seeds: list[int]) -> tuple[torch.Tensor, TrainLog]:
        g = torch.Generator().manual_seed(derive_seed(seeds[0], BATCH_STREAM))
        return train(init_weights(cfg, seeds, device), data.train.x, y, cross_entropy(y), cfg, generator=g,
                     progress=progress)

    return train_groups(engine, seeds, group)


def measure_population(cfg: Config, data: MultiViewData, w: torch.Tensor) -> dict[str, Any]:
    """Everything measured about a population: per network views and errors, and the raw test logits."""
    corr = view_correlations(w, data.features, cfg)
    learned = views_learned(corr, cfg)
    lm = evaluate(w, data.test_multi.x, cfg)[1]
    ls = evaluate(w, data.test_single.x, cfg)[1]
    lt = evaluate(w, data.train.x, cfg)[1]
    reports = error_report(lm, ls, data.test_multi, data.test_single, covered(learned, data.test_single))
    return {
        "learned": learned,
        "strength": (corr / cfg.varrho).round(decimals=4).tolist(),
        "logits_multi": lm,
        "logits_single": ls,
        "train_accuracy": train_accuracy(lt, data.train.y),
        "reports": reports,
    }


def population_experiment(
    cfg: Config, models: int, seed: int, device: torch.device, progress: Callable[[int], None] | None = None,
    engine: Engine | None = None,
) -> PopulationResults:
    """``multiview train``: M networks on one data set (seed), their lottery and ensembles of the first E."""
    engine = engine or Engine.for_device(device)
    with engine.numerics():
        data = make_data(cfg, seed, device)
        seeds = network_seeds(seed, models)
        w, log = train_networks(cfg, data, seeds, engine, SharedProgress(progress))
        m = measure_population(cfg, data, w)
    networks = [
        NetworkRecord(seed=seed, init_seed=s, train_accuracy=acc, **rep, views_learned=lv.tolist(), fit_step=fs,
                      steps=st, view_strength=vs)
        for s, acc, rep, lv, fs, st, vs in zip(
            seeds, m["train_accuracy"], m["reports"], m["learned"], log.fit_step, log.steps, m["strength"], strict=True
        )
    ]
    ensembles = [
        EnsembleRecord(seed=seed, **e)
        for e in ensemble_report(
            m["logits_multi"], m["logits_single"], data.test_multi, data.test_single, m["learned"],
            list(range(1, models + 1)),
        )
    ]
    return PopulationResults(
        config=cfg.to_dict(),
        seed=seed,
        view_threshold=threshold_text(cfg),
        environment=run_environment(device, engine),
        lottery=lottery_summary(m["learned"]),
        networks=networks,
        ensembles=ensembles,
    )


def _fraction(part: torch.Tensor, whole: torch.Tensor) -> float | None:
    n = int(whole.sum())
    return float((part & whole).sum()) / n if n else None


def run_environment(device: torch.device, engine: Engine) -> dict[str, Any]:
    """Where a result was made (:func:`fkdapp.runtime.environment`) and by which engine, with its worker threads."""
    return {**environment(device), "engine": engine.name, "workers": engine.workers}


def teacher_key(cfg: Config, seed: int, engine: Engine) -> dict[str, Any]:
    """Everything that determines a seed's teachers: the config without the students' settings, the seed and the
    engine (a pool file of another engine, or of the engine before networks were computed alone, is not reused)."""
    student_only = ("method_params", "student_steps", "kernel_batch", "transfer_single", "transfer_multi")
    return {"seed": seed, "engine": engine.name, **{k: v for k, v in cfg.to_dict().items() if k not in student_only}}


def pooled_teachers(
    cfg: Config, data: MultiViewData, seed: int, count: int, pool: Path | None, engine: Engine,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, TrainLog]:
    """A seed's first ``count`` teachers, trained once and kept in ``pool`` (a folder; None: not kept).

    A pooled file trained under the same :func:`teacher_key` is reused: exact, its teachers are taken and only the
    missing ones are trained (each network is computed alone, so the first ``count`` of a larger pool are exactly
    the teachers a smaller run trains); batched, it is reused when it holds ``count`` or more. Otherwise the
    teachers are trained and the file is replaced.
    """
    path = pool / f"seed{seed}.pt" if pool is not None else None
    key = json.dumps(teacher_key(cfg, seed, engine), sort_keys=True)
    device = data.features.device
    have = (torch.zeros(0, cfg.k, cfg.m, cfg.d, device=device), TrainLog([], []))
    if path is not None and path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged pool file is retrained, not trusted
            saved = None
        if isinstance(saved, dict) and saved.get("key") == key and isinstance(saved.get("w"), torch.Tensor):
            have = (saved["w"].to(device), TrainLog(saved["fit_step"], saved["steps"]))
    n = have[0].shape[0]
    if n < count and engine.batched:  # a population is trained whole
        n, have = 0, (have[0][:0], TrainLog([], []))
    if progress is not None:
        progress(min(n, count) * cfg.max_steps)
    if n < count:
        w, log = train_networks(cfg, data, network_seeds(seed, count)[n:], engine, progress)
        have = (torch.cat([have[0], w]), TrainLog.concat([have[1], log]))
        if path is not None:
            state = {"key": key, "w": have[0].cpu(), "fit_step": have[1].fit_step, "steps": have[1].steps}
            atomic_save(state, path)
    w, log = have
    return w[:count], TrainLog(log.fit_step[:count], log.steps[:count])


@dataclass
class TeacherSet:
    """A seed's teachers: their targets on the training and transfer sets, views learned (E_max, k, 2) and records."""

    targets: Targets
    learned: torch.Tensor
    teachers: list[NetworkRecord]
    ensembles: list[EnsembleRecord]


def seed_teachers(cfg: Config, data: MultiViewData, seed: int, e_max: int, pool: Path | None, engine: Engine,
                  progress: Callable[[int], None] | None = None, union: bool = False) -> TeacherSet:
    """The seed's first ``e_max`` teachers (from the pool), measured: targets, views, network and ensemble records;
    with ``union``, the targets hold the oracle union of the first e teachers too."""
    device, k, n = data.features.device, cfg.k, data.distill_x.shape[0]
    if e_max == 0:
        empty = Targets(torch.zeros(0, n, k * cfg.m, device=device), torch.zeros(0, n, k, device=device))
        return TeacherSet(empty, torch.zeros(0, k, 2, dtype=torch.bool, device=device), [], [])
    w_t, t_log = pooled_teachers(cfg, data, seed, e_max, pool, engine, progress)
    tm = measure_population(cfg, data, w_t)
    ensembles = [
        EnsembleRecord(seed=seed, **e)
        for e in ensemble_report(tm["logits_multi"], tm["logits_single"], data.test_multi, data.test_single,
                                 tm["learned"], list(range(1, e_max + 1)))
    ]
    teachers = [
        NetworkRecord(seed=seed, init_seed=s, train_accuracy=a, **r, views_learned=lv.tolist(), fit_step=f, steps=n,
                      view_strength=vs)
        for s, a, r, lv, f, n, vs in zip(network_seeds(seed, e_max), tm["train_accuracy"], tm["reports"],
                                         tm["learned"], t_log.fit_step, t_log.steps, tm["strength"], strict=True)
    ]
    union_h = None
    if union:
        nets = torch.cat([union_network(w_t[:e], tm["learned"][:e]) for e in range(1, e_max + 1)])
        union_h = evaluate(nets, data.distill_x, cfg.with_(m=2 * cfg.m))[0]
    return TeacherSet(Targets(*evaluate(w_t, data.distill_x, cfg), union_h), tm["learned"], teachers, ensembles)


def student_record(seed: int, method: StudentMethod, e: int, student: Student, i: int, own: torch.Tensor,
                   union: torch.Tensor, sm: dict[str, Any], log: TrainLog, data: MultiViewData,
                   k: int) -> StudentRecord:
    """The record of student ``i`` of the population (measured in ``sm``), read as ``method`` with E = ``e``."""
    learned = sm["learned"][i]
    ideal = own | union
    ideal_cov = covered(ideal[None], data.test_single)[0]
    return StudentRecord(
        seed=seed, method=method.spec, teachers=e, trained_as=student.key, weight=student.weight(k),
        params=dict(method.params), train_accuracy=sm["train_accuracy"][i], fit_step=log.fit_step[i],
        steps=log.steps[i], **sm["reports"][i], ideal_uncovered=float((~ideal_cov).float().mean()),
        own_views_kept=_fraction(learned, own), teacher_new_views_covered=_fraction(learned, union & ~own),
        mechanism_exact=bool(torch.equal(learned, ideal)), theory_failure=law(e),
        views_learned=learned.tolist(), teacher_views_union=union.tolist(), own_views=own.tolist(),
        diagnostics={"probe_steps": log.probe_steps[i], "grad_ratio": log.grad_ratio[i],
                     "view_corr": log.view_corr[i]},
        view_strength=sm["strength"][i],
    )


def train_students(cfg: Config, data: MultiViewData, seed: int, students: Sequence[Student], targets: Targets,
                   engine: Engine, progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, TrainLog]:
    """A seed's students from one shared initialisation independent of the teachers, each with its method's
    objective against ``targets``, probed at :data:`PROBE_STEPS`; each group draws its batches from a generator of
    the seed. Cross-entropy sees the training set, the distillation terms the training and transfer sets."""
    def group(members: list[Student]) -> tuple[torch.Tensor, TrainLog]:
        w0 = init_weights(cfg, [derive_seed(seed, STUDENT_STREAM)] * len(members), data.features.device)
        g = torch.Generator().manual_seed(derive_seed(seed, BATCH_STREAM, 1))
        x, y = data.distill_x, data.distill_y
        objective = student_objective(members, targets, y, cfg, g)
        return train(w0, x, y, objective, cfg, min_steps=cfg.student_steps, generator=g, progress=progress,
                     probe_steps=PROBE_STEPS, views=data.features)

    return train_groups(engine, students, group)


def distill_seed(
    cfg: Config,
    seed: int,
    teacher_counts: Sequence[int],
    methods: Sequence[StudentMethod],
    device: torch.device,
    progress: Callable[[int], None] | None = None,
    pool: Path | None = None,
    engine: Engine | None = None,
) -> DistillResults:
    """One seed: a pool of max(E) teachers, then every (method, E) student from one shared initialisation
    independent of the teachers (exact: each student alone). Returns the seed's teacher, ensemble and student
    records."""
    engine = engine or Engine.for_device(device)
    with engine.numerics():
        return _distill_seed(cfg, seed, teacher_counts, methods, device, SharedProgress(progress), pool, engine)


def _distill_seed(cfg: Config, seed: int, teacher_counts: Sequence[int], methods: Sequence[StudentMethod],
                  device: torch.device, progress: SharedProgress, pool: Path | None, engine: Engine) -> DistillResults:
    data = make_data(cfg, seed, device)
    ts = seed_teachers(cfg, data, seed, max(teacher_counts), pool, engine, progress,
                       union=any(m.USES_UNION for m in methods))
    students = students_for(methods, teacher_counts)
    w_s, s_log = train_students(cfg, data, seed, students, ts.targets, engine, progress)
    sm = measure_population(cfg, data, w_s)
    position = {(s.method, s.teachers): i for i, s in enumerate(students)}
    records = []
    for method in methods:
        own = sm["learned"][position[(method.own_lottery(), 0)]]
        for e in sorted(set(teacher_counts)):
            if e > 0 and not method.USES_TEACHERS:
                continue  # its one record is E = 0
            student = Student(method.own_lottery(), 0) if e == 0 else Student(method, e)
            i = position[(student.method, student.teachers)]
            records.append(student_record(seed, method, e, student, i, own, ts.learned[:e].any(0), sm, s_log, data,
                                          cfg.k))
    return DistillResults(
        config=cfg.to_dict(), teacher_counts=list(teacher_counts), methods=[m.spec for m in methods],
        view_threshold=threshold_text(cfg), environment=run_environment(device, engine), seeds_done=[seed],
        teachers=ts.teachers, ensembles=ts.ensembles, students=records,
    )


class IncompatibleResults(UserError):
    """The output folder holds results of a different experiment."""


def check_same_experiment(existing: DistillResults, fresh: DistillResults) -> None:
    """A results file can be resumed only by the same experiment (config, teacher counts, methods) on the same
    engine (files made before the engine was recorded are of the population engine: "batched")."""
    differ = [name for name, a, b in (
        ("config", Config.from_dict(existing.config).to_dict(), fresh.config),
        ("teacher counts", existing.teacher_counts, fresh.teacher_counts),
        ("methods", existing.methods, fresh.methods),
        ("engine", existing.environment.get("engine", "batched"), fresh.environment.get("engine")),
    ) if json.loads(json.dumps(a)) != json.loads(json.dumps(b))]
    if differ == ["teacher counts"]:
        raise IncompatibleResults(
            f"the output folder holds this sweep for E = {existing.teacher_counts}, not {fresh.teacher_counts}; to "
            "add teacher counts, sweep them into another --out with --teacher-pool OUT/teachers of this one (its "
            "teachers are reused, nothing is retrained)")
    if differ:
        raise IncompatibleResults(
            f"the output folder holds results of a different experiment ({', '.join(differ)} differ); use another "
            "--out or delete its results.json"
        )


def distill_experiment(
    cfg: Config,
    seeds: Sequence[int],
    teacher_counts: Sequence[int],
    methods: Sequence[StudentMethod | str],
    device: torch.device,
    out: Path | None,
    progress: Callable[[int], None] | None = None,
    on_seed: Callable[[DistillResults], None] | None = None,
    pool: Path | None = None,
    engine: Engine | None = None,
) -> DistillResults:
    """Seeds x teachers x methods -> one results object; with ``out``, written after every seed and resumed from.

    ``methods`` are methods or their specs (``"fkd:lambda=20"``). Teachers are kept in ``pool`` (default:
    ``out/teachers``) and reused by any experiment on the same seed and teacher settings.
    """
    methods = [m if isinstance(m, StudentMethod) else parse_method(m, cfg.method_params) for m in methods]
    engine = engine or Engine.for_device(device)
    results = DistillResults(
        config=cfg.to_dict(), teacher_counts=list(teacher_counts), methods=[m.spec for m in methods],
        view_threshold=threshold_text(cfg), environment=run_environment(device, engine),
    )
    path = out / "results.json" if out else None
    if pool is None and out is not None:
        pool = out / "teachers"
    if out is not None:
        check_writable(out, "--out")  # before any network is trained
        if pool is not None:
            check_writable(pool, "the teacher pool")
    with FolderLock(out, f"--out {out}") if out is not None else contextlib.nullcontext():
        if path is not None and path.exists():
            existing = read_distill(path)
            check_same_experiment(existing, results)
            results.add(existing)
        for seed in seeds:
            if seed in results.seeds_done:
                continue
            r = distill_seed(cfg, seed, teacher_counts, methods, device, progress, pool, engine)
            results.add(r)
            results.sort_by_seed()  # a file resumed or filled out of order still lists its seeds in order
            if path is not None:
                write_results(path, results)
            if on_seed is not None:
                on_seed(r)
    return results
