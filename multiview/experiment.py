"""Experiments: a population of networks trained and measured -> plain data (results.json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fkd.runtime import atomic_write_text, environment
from multiview.config import Config
from multiview.data import MultiViewData, derive_seed, make_data
from multiview.distill import Student, Targets, distill_weight, own_lottery_method, student_objective, students_for
from multiview.measure import (
    covered,
    ensemble_report,
    error_report,
    lottery_summary,
    threshold_text,
    train_accuracy,
    views_learned,
)
from multiview.population import evaluate, init_weights, view_correlations
from multiview.train import TrainLog, cross_entropy, train

# seed streams (derive_seed(seed, stream, index)): 0 data, 1 teacher/network inits, 2 student init, 3 batches
NETWORK_STREAM, STUDENT_STREAM, BATCH_STREAM = 1, 2, 3


def network_seeds(seed: int, count: int) -> list[int]:
    return [derive_seed(seed, NETWORK_STREAM, i) for i in range(count)]


def train_networks(
    cfg: Config, data: MultiViewData, seeds: list[int], progress: Callable[[int], None] | None = None
) -> tuple[torch.Tensor, TrainLog]:
    """Teachers: one population trained with cross-entropy under the stop-after-fit rule."""
    device = data.features.device
    w = init_weights(cfg, seeds, device)
    g = torch.Generator().manual_seed(derive_seed(seeds[0], BATCH_STREAM))
    return train(w, data.train.x, data.train.y, cross_entropy(data.train.y), cfg, generator=g, progress=progress)


def measure_population(cfg: Config, data: MultiViewData, w: torch.Tensor) -> dict[str, Any]:
    """Everything measured about a population: per network views and errors, and the raw test logits."""
    learned = views_learned(view_correlations(w, data.features, cfg), cfg)
    lm = evaluate(w, data.test_multi.x, cfg)[1]
    ls = evaluate(w, data.test_single.x, cfg)[1]
    lt = evaluate(w, data.train.x, cfg)[1]
    reports = error_report(lm, ls, data.test_multi, data.test_single, covered(learned, data.test_single))
    return {
        "learned": learned,
        "logits_multi": lm,
        "logits_single": ls,
        "train_accuracy": train_accuracy(lt, data.train.y),
        "reports": reports,
    }


def population_experiment(
    cfg: Config, models: int, seed: int, device: torch.device, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """``multiview train``: M networks on one data set (seed), their lottery and ensembles of the first E."""
    data = make_data(cfg, seed, device)
    seeds = network_seeds(seed, models)
    w, log = train_networks(cfg, data, seeds, progress)
    m = measure_population(cfg, data, w)
    networks = [
        {"seed": s, "train_accuracy": acc, **rep, "views_learned": lv.tolist(), "fit_step": fs, "steps": st}
        for s, acc, rep, lv, fs, st in zip(
            seeds, m["train_accuracy"], m["reports"], m["learned"], log.fit_step, log.steps, strict=True
        )
    ]
    ensembles = ensemble_report(
        m["logits_multi"],
        m["logits_single"],
        data.test_multi,
        data.test_single,
        m["learned"],
        list(range(1, models + 1)),
    )
    return {
        "kind": "population",
        "config": cfg.to_dict(),
        "seed": seed,
        "view_threshold": threshold_text(cfg),
        "environment": environment(device),
        "lottery": lottery_summary(m["learned"]),
        "networks": networks,
        "ensembles": ensembles,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file beside it, then rename): a killed run never leaves a partial results file."""
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def _fraction(part: torch.Tensor, whole: torch.Tensor) -> float | None:
    n = int(whole.sum())
    return float((part & whole).sum()) / n if n else None


def distill_seed(
    cfg: Config,
    seed: int,
    teacher_counts: list[int],
    methods: list[str],
    device: torch.device,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """One seed: a pool of max(E) teachers, then every (method, E) student as one population from one shared
    initialisation independent of the teachers. Returns the seed's teacher, ensemble and student records."""
    data = make_data(cfg, seed, device)
    e_max = max(teacher_counts)
    k = cfg.k
    if e_max > 0:
        w_t, t_log = train_networks(cfg, data, network_seeds(seed, e_max), progress)
        tm = measure_population(cfg, data, w_t)
        targets = Targets(*evaluate(w_t, data.train.x, cfg))
        t_learned = tm["learned"]
        ensembles = [
            {"seed": seed, **e}
            for e in ensemble_report(
                tm["logits_multi"],
                tm["logits_single"],
                data.test_multi,
                data.test_single,
                t_learned,
                list(range(1, e_max + 1)),
            )
        ]
        teachers = [
            {"experiment_seed": seed, "seed": s, "train_accuracy": a, **r, "views_learned": lv.tolist(), "fit_step": f}
            for s, a, r, lv, f in zip(
                network_seeds(seed, e_max), tm["train_accuracy"], tm["reports"], t_learned, t_log.fit_step, strict=True
            )
        ]
    else:
        targets = Targets(
            torch.zeros(0, cfg.n_train, k * cfg.m, device=device), torch.zeros(0, cfg.n_train, k, device=device)
        )
        t_learned = torch.zeros(0, k, 2, dtype=torch.bool, device=device)
        ensembles, teachers = [], []
    students = students_for(methods, teacher_counts, cfg)
    init_seed = derive_seed(seed, STUDENT_STREAM)
    w0 = init_weights(cfg, [init_seed] * len(students), device)
    g = torch.Generator().manual_seed(derive_seed(seed, BATCH_STREAM, 1))
    objective = student_objective(students, targets, data.train.y, cfg, g)
    w_s, s_log = train(
        w0, data.train.x, data.train.y, objective, cfg, min_steps=cfg.student_steps, generator=g, progress=progress
    )
    sm = measure_population(cfg, data, w_s)
    by_key = {(s.method, s.teachers): i for i, s in enumerate(students)}
    records = []
    for method in methods:
        for e in sorted(set(teacher_counts)):
            key = (own_lottery_method(method, cfg), 0) if e == 0 or method == "ce" else (method, e)
            if method == "ce" and e > 0:
                continue
            i = by_key[key]
            own = sm["learned"][by_key[(own_lottery_method(method, cfg), 0)]]
            union = t_learned[:e].any(0)
            learned = sm["learned"][i]
            ideal = own | union
            ideal_cov = covered(ideal[None], data.test_single)[0]
            records.append(
                {
                    "seed": seed,
                    "method": method,
                    "teachers": e,
                    "trained_as": f"{key[0]}@{key[1]}",
                    "lambda": distill_weight(Student(*key), cfg),
                    "train_accuracy": sm["train_accuracy"][i],
                    "fit_step": s_log.fit_step[i],
                    "steps": s_log.steps[i],
                    **sm["reports"][i],
                    "ideal_uncovered": float((~ideal_cov).float().mean()),
                    "own_views_kept": _fraction(learned, own),
                    "teacher_new_views_covered": _fraction(learned, union & ~own),
                    "mechanism_exact": bool(torch.equal(learned, ideal)),
                    "theory_failure": 2.0 ** -(e + 1),
                    "views_learned": learned.tolist(),
                    "teacher_views_union": union.tolist(),
                    "own_views": own.tolist(),
                }
            )
    return {"seed": seed, "teachers": teachers, "ensembles": ensembles, "students": records}


def check_compatible(existing: dict[str, Any], cfg: Config, teacher_counts: list[int], methods: list[str]) -> None:
    """A results file can be resumed only by the same experiment."""
    same = (
        existing.get("config") == json.loads(json.dumps(cfg.to_dict()))
        and existing.get("teacher_counts") == teacher_counts
        and existing.get("methods") == methods
    )
    if not same:
        raise ValueError(
            "the output folder holds results of a different experiment (config, teachers or methods "
            "differ); use another --out or delete its results.json"
        )


def distill_experiment(
    cfg: Config,
    seeds: list[int],
    teacher_counts: list[int],
    methods: list[str],
    device: torch.device,
    out: Path | None,
    progress: Callable[[int], None] | None = None,
    on_seed: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Seeds x teachers x methods -> one results dict; with ``out``, written after every seed and resumed from."""
    results: dict[str, Any] = {
        "kind": "distill",
        "config": cfg.to_dict(),
        "teacher_counts": teacher_counts,
        "methods": methods,
        "view_threshold": threshold_text(cfg),
        "environment": environment(device),
        "seeds_done": [],
        "teachers": [],
        "ensembles": [],
        "students": [],
    }
    path = out / "results.json" if out else None
    if path is not None and path.exists():
        existing = read_results(path)
        check_compatible(existing, cfg, teacher_counts, methods)
        results.update({key: existing[key] for key in ("seeds_done", "teachers", "ensembles", "students")})
    for seed in seeds:
        if seed in results["seeds_done"]:
            continue
        r = distill_seed(cfg, seed, teacher_counts, methods, device, progress)
        results["teachers"] += r["teachers"]
        results["ensembles"] += r["ensembles"]
        results["students"] += r["students"]
        results["seeds_done"].append(seed)
        if path is not None:
            write_json(path, results)
        if on_seed is not None:
            on_seed(r)
    return results


def read_results(path: Path) -> dict[str, Any]:
    """Load a results.json; a missing or malformed file is a ValueError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"results file {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"results file {path} is not valid JSON ({e}); rerun the experiment") from None
    if not isinstance(data, dict) or "config" not in data:
        raise ValueError(f"results file {path} is not a multiview results file (no 'config')")
    return data
