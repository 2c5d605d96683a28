"""Typed results of the simulation, and the one serialiser that writes and reads them (with a schema version).

A results file (``results.json``) holds a :class:`DistillResults` (``multiview simulate`` / ``sweep``) or a
:class:`PopulationResults` (``multiview train``). Every record is a dataclass; reports, plots, shards and scripts
work on them, never on raw dicts. Files written before schema 2 (no ``schema`` key) are migrated when read:
network records' ``experiment_seed`` / ``seed`` become ``seed`` / ``init_seed``, students' ``lambda`` becomes
``weight``, and methods are named by their spec under the file's config (``fkd:lambda=5`` where the config set
``fkd_lambda`` to 5), with their parameters filled in.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fkdapp.errors import UserError
from fkdapp.jsonfile import JSONFileError, read_json
from fkdapp.runtime import atomic_write_text

SCHEMA = 2


class ResultsError(UserError):
    """A results file that is missing, malformed or of the wrong kind (one line, says what to run)."""


@dataclass
class Errors:
    """A learner's errors on the test sets: multi-view error, single-view failure (overall, and split by whether
    the present view was learned: None where no such sample), and the fraction of single-view samples whose view
    was not learned."""

    multi_view_error: float
    single_view_failure: float
    failure_view_learned: float | None
    failure_view_not_learned: float | None
    uncovered_fraction: float


@dataclass
class NetworkRecord(Errors):
    """One network trained with cross-entropy (a teacher, or a member of a population)."""

    seed: int  # the experiment seed (data)
    init_seed: int  # the seed of its initialisation
    train_accuracy: float
    views_learned: list[list[bool]]
    fit_step: int
    steps: int | None = None
    view_strength: list[list[float]] | None = None  # max_r <w_j,r, v_j,l> / varrho per (class, view); None: older


@dataclass
class EnsembleRecord(Errors):
    """The ensemble (mean logits) of a seed's first ``size`` teachers."""

    seed: int
    size: int
    predicted_uncovered: float  # product of the members' uncovered fractions (independent lotteries)


@dataclass
class StudentRecord(Errors):
    """One (seed, method, E) student: its errors, its views, and its teachers' and own views beside them."""

    seed: int
    method: str  # the method spec, as given to the sweep
    teachers: int
    trained_as: str  # spec@E of the run it was read from (the own-lottery run at E = 0)
    weight: float  # the weight applied to its distillation term
    params: dict[str, Any]
    train_accuracy: float
    ideal_uncovered: float
    own_views_kept: float | None
    teacher_new_views_covered: float | None
    mechanism_exact: bool
    theory_failure: float
    views_learned: list[list[bool]]
    teacher_views_union: list[list[bool]]
    own_views: list[list[bool]]
    fit_step: int | None = None  # the step it first fitted its training set (-1: never; None: not recorded)
    steps: int | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    view_strength: list[list[float]] | None = None  # max_r <w_j,r, v_j,l> / varrho per (class, view); None: older


@dataclass
class DistillResults:
    """Seeds x teacher counts x methods: the teachers, their ensembles and the students."""

    config: dict[str, Any]
    teacher_counts: list[int]
    methods: list[str]
    view_threshold: str
    environment: dict[str, Any]
    seeds_done: list[int] = field(default_factory=list)
    teachers: list[NetworkRecord] = field(default_factory=list)
    ensembles: list[EnsembleRecord] = field(default_factory=list)
    students: list[StudentRecord] = field(default_factory=list)
    kind: str = "distill"
    schema: int = SCHEMA

    def add(self, other: DistillResults) -> None:
        """Append another part's seeds and records (a seed's results, or a shard)."""
        self.seeds_done += other.seeds_done
        self.teachers += other.teachers
        self.ensembles += other.ensembles
        self.students += other.students

    def only(self, seeds: list[int]) -> DistillResults:
        """The same sweep restricted to ``seeds`` (records of other seeds left out)."""
        keep = set(seeds)
        return dataclasses.replace(
            self, seeds_done=[s for s in self.seeds_done if s in keep],
            teachers=[t for t in self.teachers if t.seed in keep],
            ensembles=[e for e in self.ensembles if e.seed in keep],
            students=[s for s in self.students if s.seed in keep])

    def sort_by_seed(self) -> None:
        self.seeds_done.sort()
        for records in (self.teachers, self.ensembles, self.students):
            records.sort(key=lambda r: r.seed)


@dataclass
class PopulationResults:
    """``multiview train``: M networks on one data set, their lottery and the ensembles of the first E."""

    config: dict[str, Any]
    seed: int
    view_threshold: str
    environment: dict[str, Any]
    lottery: dict[str, int]
    networks: list[NetworkRecord]
    ensembles: list[EnsembleRecord]
    kind: str = "population"
    schema: int = SCHEMA


Results = DistillResults | PopulationResults


def to_dict(results: Results) -> dict[str, Any]:
    return dataclasses.asdict(results)


def write_results(path: str | Path, results: Results) -> None:
    """Write atomically (temp file beside it, then rename): a killed run never leaves a partial results file."""
    atomic_write_text(path, json.dumps(to_dict(results), indent=1) + "\n")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ResultsError(f"malformed results file: a {where} record lacks {missing}; rerun the experiment")
    return cls(**{k: v for k, v in data.items() if k in names})


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 (no ``schema`` key) -> schema 2."""
    from multiview.config import Config
    from multiview.methods import parse_method

    data = dict(data)
    if data.get("kind") == "population":
        data["networks"] = [{**n, "init_seed": n["seed"], "seed": data.get("seed", 0)} for n in data["networks"]]
        data["ensembles"] = [{**e, "seed": data.get("seed", 0)} for e in data.get("ensembles", [])]
        return data
    cfg = Config.from_dict(data["config"])
    methods = {spec: parse_method(spec, cfg.method_params) for spec in {*data.get("methods", []),
                                                          *(s["method"] for s in data.get("students", []))}}
    data["methods"] = [methods[spec].spec for spec in data.get("methods", [])]
    data["teachers"] = [{**t, "init_seed": t["seed"], "seed": t["experiment_seed"]} for t in data.get("teachers", [])]
    data["students"] = [{**s, "method": methods[s["method"]].spec, "weight": s.get("lambda", 0.0),
                         "params": methods[s["method"]].params} for s in data.get("students", [])]
    return data


def from_dict(data: Any) -> Results:
    """Typed results from a parsed results file of any schema; a malformed one is a one-line ResultsError."""
    if not isinstance(data, dict) or "config" not in data:
        raise ResultsError("not a multiview results file (no 'config'): give the results.json of `multiview "
                           "simulate`, `sweep` or `train`")
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise ResultsError(f"results file schema {schema!r} is newer than this toolkit's ({SCHEMA}); update fkd")
    try:
        if schema == 1:
            data = _migrate_v1(data)
        if data.get("kind") == "population":
            networks = [_build(NetworkRecord, n, "network") for n in data["networks"]]
            ensembles = [_build(EnsembleRecord, e, "ensemble") for e in data.get("ensembles", [])]
            return _build(PopulationResults, {**data, "networks": networks, "ensembles": ensembles, "schema": SCHEMA},
                          "population")
        records = {
            "teachers": [_build(NetworkRecord, t, "teacher") for t in data.get("teachers", [])],
            "ensembles": [_build(EnsembleRecord, e, "ensemble") for e in data.get("ensembles", [])],
            "students": [_build(StudentRecord, s, "student") for s in data.get("students", [])],
        }
        return _build(DistillResults, {**data, **records, "schema": SCHEMA}, "results")
    except (KeyError, TypeError, AttributeError) as e:
        raise ResultsError(f"malformed results file ({type(e).__name__}: {e}); rerun the experiment") from None


def read_results(path: str | Path) -> Results:
    """Load a results.json; a missing or malformed file is a one-line ResultsError naming it."""
    p = Path(path)
    if p.is_dir() and (p / "results.json").is_file():
        p = p / "results.json"
    if p.is_dir():
        raise ResultsError(f"{p} is a folder without a results.json; give the results.json of a run")
    try:
        data = read_json(p, "results file", dict, fix="rerun the experiment")
    except JSONFileError as e:
        raise ResultsError(str(e)) from None
    return from_dict(data)


def read_distill(path: str | Path) -> DistillResults:
    """A distillation results file (simulate or sweep); anything else is a one-line ResultsError."""
    r = read_results(path)
    if not isinstance(r, DistillResults):
        raise ResultsError(f"{path} is a population file from `multiview train` (no students); give the results.json "
                           "of `multiview simulate` or `multiview sweep`")
    return r
