"""The theory's transfer channel (issue 33): single-view data in the kernel, timing against k, a regime that meets the
theory's assumptions, each sweep decomposed and judged by one rule fixed before it ran.

Plans (each a list of steps run in order, every step resumable; two plans can run side by side as two processes):

``transfer`` (k = 10, 50 samples per class, the regime map's closest cell: FKD eps = 1, KD at weight 1):
  the kernel computed on the training set alone (T0, today), with 500 unlabelled single-view samples (T1), and with
  500 single- and 500 multi-view ones (T2); methods fkd, kd, fkd-add toward the mean and toward the most similar
  teacher per pair, and the oracle union target (a probe that knows the views). Seeds 0-3, then fresh seeds 4-7.
``timing`` and ``k20`` (25 samples per class, the k-trend's cells; fkd and kd, no transfer set): student training
  length 600, 1200 and 3000 steps at k = 10 (seeds 0-3) and at k = 20 (``k20``, seeds 0-1), and the spread of
  class start times (sigma_0 0.003 and 0.012 at k = 10, 600 steps, seeds 0-3); ``timing-report``: the 1200- and
  3000-step cells at k = 10 on the fresh seeds 4-7 (the 1200-step cell met the rule on seeds 0-3); ``k20-report``:
  the 1200-step cell at k = 20 on the fresh seeds 4-7, chosen before they ran as the only k = 20 cell whose FKD met
  the rule's ratio and multi-view thresholds on seeds 0-1 (0.82, 0); it did not meet own views kept (0.898 < 0.9,
  which the table shows rounded as 0.90) nor q (0.075 > 5%).
``channel-steps``: T1 (the single-view transfer set) at 1200 student steps instead of 600, fkd, kd and the one-sided
  fkd-add (which kept its own views with the channel at 600 steps but took too few of the teachers'): does the
  channel with a longer-trained student meet the rule? Seeds 0-3, then the fresh seeds 4-7 whatever 0-3 show; then
  the same without the transfer set (T0 at 1200 steps, 50 samples per class: does the 1200-step result at 25 per
  class hold at 50?), seeds 0-3 and 4-7.
``probe`` and ``regime``: d = 512 and 1024 with sigma_p = 0.7 / sqrt(d) (a patch's noise norm as at d = 256),
  mu = 0.04 and 0.12 of 500 training samples (1 and 3 single-view samples per (class, view)), d = 256 at mu = 0.04
  beside them: 4 teachers per seed, seeds 0-1, measured for a clean lottery (one-view pairs >= 0.9) and for
  memorisation (a network that did not learn a view still fits >= 0.9 of that view's single-view training samples):
  ``probe``. ``regime`` then gives the first (cheapest) setting that meets both FKD, fkd-add and KD sweeps on seeds
  0-3, then 4-7.

The rule (:data:`multiview.decompose.RULE_V1`, fixed before any of this ran) is judged on the report seeds only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fkdapp.runtime import write_json
from multiview.config import Config
from multiview.data import make_data
from multiview.decompose import RULE_V1, decompose, decomposition_markdown, verdict_v1
from multiview.engine import Engine
from multiview.experiment import network_seeds, train_networks
from multiview.measure import memorisation, views_learned
from multiview.population import evaluate, view_correlations
from multiview.records import read_distill
from studies.sweeps import Setting, read_json, restrict, run_setting, wall_seconds

FKD, KD = "fkd:eps=1", "kd:kd_weight=1"
ADD_MEAN, ADD_MAX, ORACLE = "fkd-add:eps=1", "fkd-add:eps=1,target=max", "fkd-oracle:eps=1"
TRANSFER_METHODS = (FKD, KD, ADD_MEAN, ADD_MAX, ORACLE)
SELECT, REPORT = (0, 1, 2, 3), (4, 5, 6, 7)
#: The plans :func:`run_plan` knows (the module docstring says what each runs).
PLANS = ("transfer", "t0-report", "timing", "timing-report", "k20", "k20-report", "channel-steps", "probe", "regime",
         "channel")
BASE = ("k=10", "n_train=500")

TRANSFER = [
    Setting("T0-train-only", BASE, TRANSFER_METHODS, notes={"channel": "training set only (multi-view)"}),
    Setting("T1-single500", (*BASE, "transfer_single=500"), TRANSFER_METHODS,
            notes={"channel": "training set + 500 single-view"}),
    Setting("T2-single500-multi500", (*BASE, "transfer_single=500", "transfer_multi=500"), TRANSFER_METHODS,
            notes={"channel": "training set + 500 single-view + 500 multi-view"}),
]
#: The channel with the length that made FKD follow the law at 25 samples per class, and its control without the
#: transfer set (``channel-steps``).
T1_STEPS = Setting("T1-single500-steps1200", (*BASE, "transfer_single=500", "student_steps=1200"), (FKD, KD, ADD_MEAN),
                   notes={"channel": "training set + 500 single-view", "student_steps": 1200})
T0_STEPS = Setting("T0-train-only-steps1200", (*BASE, "student_steps=1200"), (FKD, KD, ADD_MEAN),
                   notes={"channel": "training set only (multi-view)", "student_steps": 1200})


def _timing(k: int, steps: int, extra: tuple[str, ...] = (), name: str = "") -> Setting:
    big = ("max_steps=5000",) if k > 10 else ()
    return Setting(name or f"k{k}-steps{steps}", (f"k={k}", f"n_train={25 * k}", f"student_steps={steps}", *big,
                                                 *extra), (FKD, KD), notes={"k": k, "student_steps": steps})


TIMING_K10 = [*(_timing(10, s) for s in (600, 1200, 3000)),
              *(_timing(10, 600, (f"sigma_0={s}",), f"k10-sigma{s}") for s in (0.003, 0.012))]
TIMING_K20 = [_timing(20, s) for s in (600, 1200, 3000)]
TIMING_SEEDS = {10: (0, 1, 2, 3), 20: (0, 1)}


def regime_overrides(d: int, mu: float) -> tuple[str, ...]:
    return ("k=10", "n_train=500", f"d={d}", f"sigma_p={0.7 / math.sqrt(d):.6g}", f"mu={mu}")


REGIMES = [(256, 0.04), *((d, mu) for d in (512, 1024) for mu in (0.04, 0.12))]
PROBE_SEEDS, PROBE_MODELS = (0, 1), 4
CLEAN, MEMORISED = 0.9, 0.9


def lottery_probe(cfg: Config, seed: int, models: int, engine: Engine) -> dict[str, Any]:
    """``models`` networks trained with CE on the seed's data: one-view (network, class) pairs, how they fit the
    single-view training samples (:func:`multiview.measure.memorisation`), training accuracy and multi-view error."""
    with engine.numerics():
        data = make_data(cfg, seed, "cpu")
        w, _ = train_networks(cfg, data, network_seeds(seed, models), engine)
        learned = views_learned(view_correlations(w, data.features, cfg), cfg)
        train_logits = evaluate(w, data.train.x, cfg)[1]
        multi = evaluate(w, data.test_multi.x, cfg)[1]
    mem = memorisation(learned, train_logits, data.train)
    pairs = learned.sum(-1)
    return {"seed": seed, "one_view": float((pairs == 1).float().mean()), "both": float((pairs == 2).float().mean()),
            "train_accuracy": float((train_logits.argmax(-1) == data.train.y).float().mean()),
            "multi_view_error": float((multi.argmax(-1) != data.test_multi.y).float().mean()),
            "single_train": int((data.train.view >= 0).sum()), **mem}


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def run_regime_probe(out: Path, engine: Engine, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every (d, mu) of :data:`REGIMES` probed on :data:`PROBE_SEEDS` (kept in OUT/regime_probe.json: a setting
    already there is not run again); each row says whether the lottery is clean and the samples memorised."""
    path = out / "regime_probe.json"
    rows = {r["name"]: r for r in (read_json(path) or [])}
    for d, mu in REGIMES:
        name = f"d{d}-mu{mu}"
        if name in rows:
            continue
        cfg = Config().with_overrides([*regime_overrides(d, mu), *extra])
        start = time.time()
        per_seed = [lottery_probe(cfg, s, PROBE_MODELS, engine) for s in PROBE_SEEDS]
        row = {"name": name, "d": d, "mu": mu, "overrides": list(regime_overrides(d, mu)), "seeds": per_seed,
               "one_view": _mean([p["one_view"] for p in per_seed]),
               "fit_view_not_learned": _mean([v for p in per_seed for v in p["fit_view_not_learned"]]),
               "fit_view_learned": _mean([v for p in per_seed for v in p["fit_view_learned"]]),
               "multi_view_error": _mean([p["multi_view_error"] for p in per_seed]),
               "wall_s": round(time.time() - start, 1)}
        row["meets"] = bool(row["one_view"] >= CLEAN and (row["fit_view_not_learned"] or 0) >= MEMORISED)
        rows[name] = row
        write_json(path, list(rows.values()))
    return list(rows.values())


def summarise(out: Path, setting: Setting, seeds: Sequence[int], extra: Sequence[str] = ()) -> dict[str, Any]:
    """A sweep's decomposition on ``seeds`` and, on the report seeds, the rule's verdict per method."""
    r = restrict(read_distill(out / "sweeps" / setting.name / "results.json"), seeds)
    rows = decompose(r)
    judged = set(seeds) <= set(REPORT) or set(seeds).isdisjoint(SELECT)
    return {"setting": setting.name, "overrides": [*setting.overrides, *extra], "notes": setting.notes,
            "seeds": list(seeds), "rows": [x.to_dict() for x in rows],
            "verdicts": {m: verdict_v1(rows, m) for m in setting.methods} if judged else None,
            "wall_s_total": wall_seconds(out, setting), "table": decomposition_markdown(r)}


#: The sweep plans as data: plan -> its (setting, seeds) steps, run in order.
STEPS: dict[str, list[tuple[Setting, tuple[int, ...]]]] = {
    # the channel's select and report seeds first; T2 (single + multi) last
    "transfer": [(TRANSFER[0], SELECT), (TRANSFER[1], SELECT), (TRANSFER[1], REPORT), (TRANSFER[0], REPORT),
                 (TRANSFER[2], SELECT), (TRANSFER[2], REPORT)],
    "t0-report": [(TRANSFER[0], REPORT)],  # the control's report seeds, on a second lane beside the transfer plan
    "timing-report": [(s, REPORT) for s in TIMING_K10[1:3]],  # k = 10 length cells on fresh seeds (chosen on 0-3)
    # the channel at 1200 student steps: select seeds, then report seeds
    "channel-steps": [(T1_STEPS, SELECT), (T1_STEPS, REPORT), (T0_STEPS, SELECT), (T0_STEPS, REPORT)],
    "k20-report": [(TIMING_K20[1], REPORT)],  # the k = 20 1200-step cell on fresh seeds (chosen on seeds 0-1)
    "timing": [(s, TIMING_SEEDS[10]) for s in TIMING_K10],
    "k20": [(s, TIMING_SEEDS[20]) for s in TIMING_K20],
}


def run_plan(plan: str, out: Path, engine: Engine, extra: Sequence[str] = (), limit_seeds: int | None = None
             ) -> list[dict[str, Any]]:
    """Run one plan's steps in order (see the module docstring); after every sweep OUT/PLAN.json holds the
    summaries so far. ``limit_seeds`` keeps the first seeds of every group (tests)."""
    def cut(seeds: Sequence[int]) -> tuple[int, ...]:
        return tuple(seeds[:limit_seeds]) if limit_seeds else tuple(seeds)

    if plan == "channel":  # the kernels' view signal on the training set and on single-view data
        return kernel_channels(out, cut((0, 1)), engine, extra)
    if plan not in STEPS and plan not in ("probe", "regime"):
        raise ValueError(f"unknown plan {plan!r}; the plans: {', '.join(PLANS)}")
    summaries: list[dict[str, Any]] = []
    steps, probe = STEPS.get(plan, []), None
    if plan in ("probe", "regime"):
        probe = run_regime_probe(out, engine, extra)
        met = [r for r in probe if r["meets"]]
        if met and plan == "regime":  # the first probed regime that meets the theory, on both seed sets
            chosen = Setting(f"regime-{met[0]['name']}", tuple(met[0]["overrides"]), (FKD, ADD_MEAN, KD))
            steps = [(chosen, SELECT), (chosen, REPORT)]

    def save() -> None:
        if probe is None:
            write_json(out / f"{plan}.json", summaries)
        else:
            write_json(out / "regime.json", {"probe": probe, "sweeps": summaries})

    if probe is not None:
        save()
    for setting, seeds in steps:
        run_setting(out, setting, cut(seeds), engine, extra)
        summaries.append(summarise(out, setting, cut(seeds), extra))
        save()
    return summaries


def kernel_channels(out: Path, seeds: Sequence[int], engine: Engine, extra: Sequence[str]) -> list[dict[str, Any]]:
    """The channel plan: per seed, the kernels' view signal (OUT/kernel_channel.json; seeds there are not rerun)."""
    path = out / "kernel_channel.json"
    done = read_json(path) or []
    for seed in seeds:
        if seed not in [d["seed"] for d in done]:
            done.append(kernel_channel(Config().with_overrides([*BASE, *extra]), seed, engine))
            write_json(path, done)
    return done


def _row(setting: str, method: str, seeds: Sequence[int], rows: list, students: list) -> dict[str, Any]:
    """One (setting, method, seed group) line of the study's table, from its decomposition rows."""
    mine = {r.teachers: r for r in rows if r.method == method}
    per_e = [mine[e] for e in (1, 2, 3, 4) if e in mine]
    steps = [s.steps for s in students if s.method == method and s.teachers > 0 and s.steps is not None]
    return {"setting": setting, "method": method, "seeds": list(seeds),
            "over_law": {r.teachers: r.over_law for r in per_e},  # unrounded: the table prints what the rule saw
            "failure": {r.teachers: [round(r.failure[0], 4), None if math.isnan(r.failure[1]) else
                                     round(r.failure[1], 4)] for r in per_e},
            "p_mean": _mean([r.p[0] for r in per_e if r.p is not None]),
            "q_max": max((r.q[0] for r in per_e), default=None),
            "kept_min": min((r.kept[0] for r in per_e if r.kept is not None), default=None),
            "multi_max": max((r.multi_max for r in per_e), default=None),
            "steps_mean": _mean(steps)}


def study_rows(out: Path) -> list[dict[str, Any]]:
    """Every sweep of the study under OUT/sweeps, by seed group (0-3, 4-7), each method's line with the rule's verdict
    on the report seeds."""
    rows = []
    for folder in sorted((out / "sweeps").iterdir()) if (out / "sweeps").is_dir() else []:
        if not (folder / "results.json").is_file():
            continue
        r = read_distill(folder / "results.json")
        for seeds in (SELECT, REPORT):
            part = restrict(r, [s for s in r.seeds_done if s in seeds])
            if not part.seeds_done:
                continue
            dec = decompose(part)
            for method in r.methods:
                line = _row(folder.name, method, part.seeds_done, dec, part.students)
                judged = set(part.seeds_done) == set(REPORT)
                line["verdict"] = verdict_v1(dec, method) if judged else None
                rows.append(line)
    return rows


def _devices(out: Path) -> str:
    """The machines and engines the study's sweeps ran on, as their records say."""
    seen = set()
    for folder in sorted((out / "sweeps").iterdir()) if (out / "sweeps").is_dir() else []:
        env = (read_json(folder / "results.json") or {}).get("environment", {})
        if env:
            seen.add(f"{env.get('device_name', env.get('device', '?'))} ({env.get('engine', '?')} engine)")
    return ", ".join(sorted(seen)) or "-"


def report_markdown(out: Path) -> str:
    """The study's tables: every sweep's failure / law per E with the decomposition, then the regime probe."""
    lines = ["Failure / 2^-(E+1) at E = 1..4 (mean over seeds), p: teachers' views taken (mean over E), q: views "
             "nobody had (max over E), own views kept (min over E), multi-view error (max), the students' mean steps; "
             "the rule (<= 1.25 at every E, own kept >= 0.9, multi-view <= 2%; by the mechanism q <= 5%) on seeds 4-7 "
             f"only. Made on: {_devices(out)}, 1 thread per process.", "",
             "| sweep | method | seeds | E = 1 | E = 2 | E = 3 | E = 4 | p | q | own kept | multi-view | steps "
             "| verdict |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in study_rows(out):
        v = r["verdict"]
        text = "-" if v is None else ("holds by the mechanism" if v["by_mechanism"] else "holds" if v["law_holds"]
                                      else "fails")
        seeds = f"{r['seeds'][0]}-{r['seeds'][-1]}"

        def num(x: float | None, fmt: str = ".2f") -> str:
            return "-" if x is None else format(x, fmt)

        lines.append(f"| {r['setting']} | {r['method']} | {seeds} | " + " | ".join(
            num(r["over_law"].get(e)) for e in (1, 2, 3, 4)) + f" | {num(r['p_mean'])} | {num(r['q_max'], '.3f')} | "
                     f"{num(r['kept_min'])} | {num(r['multi_max'], '.3f')} | {num(r['steps_mean'], '.0f')} | {text} |")
    probe = read_json(out / "regime_probe.json")
    if probe:
        lines += ["", "Regime probe (teachers only, 4 per seed, seeds 0-1): a clean lottery (one-view pairs >= 0.9) "
                      "and memorisation (a view not learned, its single-view training samples still fitted >= 0.9).",
                  "",
                  "| d | mu | sigma_p | one-view pairs | fit, view not learned | fit, view learned | multi-view error "
                  "| meets both | wall (s) |", "|---|---|---|---|---|---|---|---|---|"]
        for p in probe:
            sp = next(o.split("=")[1] for o in p["overrides"] if o.startswith("sigma_p"))
            lines.append(f"| {p['d']} | {p['mu']} | {sp} | {p['one_view']:.2f} | "
                         f"{'-' if p['fit_view_not_learned'] is None else format(p['fit_view_not_learned'], '.2f')} | "
                         f"{'-' if p['fit_view_learned'] is None else format(p['fit_view_learned'], '.2f')} | "
                         f"{p['multi_view_error']:.3f} | {'yes' if p['meets'] else 'no'} | {p['wall_s']:.0f} |")
    channel = read_json(out / "kernel_channel.json")
    if channel:
        lines += ["", "The channel (k = 10, 500 training samples, eps 1): the distance D between two teachers' "
                      "normalised kernels on the (multi-view) training set and on 500 single-view test samples, by how "
                      "many classes their views differ.", "",
                  "| seed | teachers | classes differing | D on the training set | D on single-view samples | ratio |",
                  "|---|---|---|---|---|---|"]
        for c in channel:
            for p in c["pairs"]:
                lines.append(f"| {c['seed']} | {p['teachers'][0]}, {p['teachers'][1]} | {p['classes_differing']} | "
                             f"{p['d_train']:.4f} | {p['d_single']:.4f} | {p['d_single'] / p['d_train']:.1f} |")
    walls = []
    for folder in sorted((out / "sweeps").iterdir()) if (out / "sweeps").is_dir() else []:
        w = read_json(folder / "wall.json")
        if w:
            walls.append(f"{folder.name}: " + ", ".join(f"seeds {k} {v / 60:.1f} min" for k, v in w.items()))
    if walls:
        lines += ["", "Wall time (one process, one thread, beside a second such process): " + "; ".join(walls) + "."]
    return "\n".join(lines)


def write_report(out: Path, table: Path, records_json: Path, records: Path) -> None:
    """The study's table (Markdown), its rows and the probe (JSON), and every sweep's results.json copied under
    ``records/NAME/`` (what ``multiview report`` and ``multiview plot`` read back)."""
    from fkdapp.runtime import atomic_write_text

    atomic_write_text(table, report_markdown(out) + "\n")
    write_json(records_json, {"rule": {k: list(v) if isinstance(v, tuple) else v for k, v in RULE_V1.items()},
                              "rows": study_rows(out), "probe": read_json(out / "regime_probe.json"),
                              "kernel_channel": read_json(out / "kernel_channel.json"),
                              "walls": {f.name: read_json(f / "wall.json")
                                        for f in sorted((out / "sweeps").iterdir())}})
    for folder in sorted((out / "sweeps").iterdir()):
        if (folder / "results.json").is_file():
            atomic_write_text(records / folder.name / "results.json", (folder / "results.json").read_text())


def kernel_channel(cfg: Config, seed: int, engine: Engine, n_single: int = 500) -> dict[str, Any]:
    """How much the teachers' kernels say about which view each learned, on the training set and on single-view
    samples: for every pair of the seed's first 4 teachers (trained as the sweeps train them), the number of
    classes where their views differ, and the distance D between their normalised kernels on the training set and
    on ``n_single`` single-view test samples (eps as FKD's, 1)."""
    from fkd import kernel_distance, normalized_kernel

    with engine.numerics():
        data = make_data(cfg, seed, "cpu")
        w, _ = train_networks(cfg, data, network_seeds(seed, 4), engine)
        learned = views_learned(view_correlations(w, data.features, cfg), cfg)
        h_train = evaluate(w, data.train.x, cfg)[0]
        h_single = evaluate(w, data.test_single.x[:n_single], cfg)[0]
    pairs = []
    for a in range(4):
        for b in range(a + 1, 4):
            differ = int((learned[a] != learned[b]).any(-1).sum())
            d_train = float(kernel_distance(normalized_kernel(h_train[a], 1.0), normalized_kernel(h_train[b], 1.0)))
            d_single = float(kernel_distance(normalized_kernel(h_single[a], 1.0), normalized_kernel(h_single[b],
                                                                                                      1.0)))
            pairs.append({"teachers": [a, b], "classes_differing": differ, "d_train": d_train,
                          "d_single": d_single})
    return {"seed": seed, "pairs": pairs}
