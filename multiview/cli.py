"""The ``multiview`` command line: train, simulate, sweep, plot, report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import torch

from fkdapp import settings
from fkdapp.errors import ConfigError, OneLineGroup, UserError, user_errors
from fkdapp.progress import Progress
from fkdapp.runtime import check_writable, is_main, rank, resolve_device, world_size
from multiview.config import Config
from multiview.distill import students_for
from multiview.engine import KINDS, Engine, run_script, set_numerics
from multiview.experiment import distill_experiment, population_experiment
from multiview.methods import METHODS, StudentMethod, parse_methods
from multiview.records import DistillResults, read_distill, write_results
from multiview.report import views_text

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
#: One seed grammar in every command (:func:`fkdapp.settings.parse_seeds`).
SEEDS_HELP = "Seeds: a count N (seeds 0..N-1), a range like 4-7, or a list like 0,2,5."


@click.group(cls=OneLineGroup, context_settings=CONTEXT)
def main() -> None:
    """Simulate the multi-view theory: the per-class lottery and distillation from E teachers."""
    set_numerics()


def build_config(config_file: str | None, overrides: Sequence[str]) -> Config:
    """The default config, updated from a JSON file, then from KEY=VALUE overrides (values parsed as JSON)."""
    from multiview.data import check_memory

    cfg = (Config.load(config_file) if config_file else Config()).with_overrides(list(overrides))
    check_memory(cfg)
    return cfg


def common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one config value (repeatable), e.g. --set k=20, or a method's parameter: --set fkd.lambda=8.",
    )(f)
    f = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        help="JSON file of config values (a results.json works too).",
    )(f)
    f = click.option("--engine", type=click.Choice(KINDS), default="auto", show_default=True,
                     help="exact: each network alone, its numbers its own (the CPU's); batched: one population per "
                          "seed, faster on a GPU, per-seed numbers depend on it (auto: batched on CUDA).")(f)
    f = click.option("--workers", type=click.IntRange(1), default=None,
                     help="Networks trained side by side on the CPU, one thread each; no number depends on it "
                          "[the cores, shared among torchrun's processes].")(f)
    return click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")(f)


@main.command()
@click.option("--models", "-M", default=4, show_default=True, type=click.IntRange(1), help="Networks to train.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Data and init seed.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/train", show_default=True)
@common
def train(models: int, seed: int, out: str, device: str, workers: int | None, engine: str, config_file: str | None,
          overrides: tuple[str, ...]) -> None:
    """Train a population of M networks with cross-entropy and measure the lottery (writes OUT/results.json)."""
    from multiview.report import lottery_report

    with user_errors():
        cfg = build_config(config_file, overrides)
        dev = resolve_device(device)
        check_writable(out, "--out")  # before any network is trained
        progress = Progress(models * cfg.max_steps, f"training {models} networks on {dev.type}, network-steps")
        r = population_experiment(cfg, models, seed, dev, progress, Engine.for_device(dev, workers, engine))
        progress.close()
        write_results(Path(out) / "results.json", r)
    click.echo(f"views learned: {r.view_threshold}  (per class: 1 first view, 2 second, B both, - none)")
    click.echo(f"{'net':>3}  {'train acc':>9}  {'multi err':>9}  {'single fail':>11}  {'uncovered':>9}  views")
    for i, n in enumerate(r.networks):
        click.echo(
            f"{i:>3}  {n.train_accuracy:9.3f}  {n.multi_view_error:9.3f}  "
            f"{n.single_view_failure:11.3f}  {n.uncovered_fraction:9.3f}  {views_text(n.views_learned)}"
        )
    click.echo(f"{'E':>3}  {'multi err':>9}  {'single fail':>11}  {'uncovered':>9}  predicted (independent lotteries)")
    for e in r.ensembles:
        click.echo(
            f"{e.size:>3}  {e.multi_view_error:9.3f}  {e.single_view_failure:11.3f}  "
            f"{e.uncovered_fraction:9.3f}  {e.predicted_uncovered:.3f}"
        )
    click.echo(lottery_report(r.networks))
    click.echo(f"results in {Path(out) / 'results.json'}")


def parse_seeds(text: str) -> list[int]:
    """:func:`fkdapp.settings.parse_seeds` for a click option (a bad value: click's one-line usage error)."""
    try:
        return settings.parse_seeds(text)
    except ConfigError as e:
        raise click.BadParameter(str(e)) from None


def parse_counts(text: str) -> list[int]:
    """:func:`fkdapp.settings.parse_counts` for a click option."""
    try:
        return settings.parse_counts(text)
    except ConfigError as e:
        raise click.BadParameter(str(e)) from None


def _run_distill(cfg: Config, seeds: list[int], counts: list[int], methods: list[StudentMethod], dev: torch.device,
                 out: Path, engine: Engine, pool: Path | None = None) -> DistillResults:
    """Seeds shared out by rank under torchrun (each rank into its own shard folder, rank 0 merges); the teachers
    of every seed kept in ``pool`` (default OUT/teachers)."""
    r, world = rank(), world_size()
    shard_out = out if world == 1 else out / "shards" / f"rank{r}"
    mine = seeds[r::world]
    existing = shard_out / "results.json"
    if existing.is_file() and is_main():
        click.echo(f"resuming from {existing} (seeds already there are not run again; delete it or use another --out "
                   f"to start fresh)", err=True)
    networks = max(counts) + len(students_for(methods, counts))  # teachers, then students
    progress = Progress(networks * cfg.max_steps * len(mine), f"seeds {mine} on {dev}, network-steps")
    try:
        results = distill_experiment(cfg, mine, counts, methods, dev, shard_out, progress,
                                     pool=pool or out / "teachers", engine=engine)
    finally:
        progress.close()
    if world > 1:
        from multiview.shard import merge_shards

        results = merge_shards(out, world, r)
    return results


@main.command()
@click.option("--teachers", "-E", default=2, show_default=True, type=click.IntRange(0), help="Number of teachers E.")
@click.option("--method", default="fkd", show_default=True, help=f"A method ({', '.join(METHODS)}) or a spec like "
              "fkd:lambda=20.")
@click.option("--seeds", default="1", show_default=True, help=SEEDS_HELP)
@click.option("--out", type=click.Path(file_okay=False), default="runs/simulate", show_default=True)
@common
def simulate(
    teachers: int, method: str, seeds: str, out: str, device: str, workers: int | None, engine: str,
    config_file: str | None, overrides: tuple[str, ...],
) -> None:
    """The main job: E teachers, then a student distilled from them, against the theory 2^-(E+1)."""
    from multiview.report import simulate_table

    with user_errors():
        cfg = build_config(config_file, overrides)
        dev = resolve_device(device)
        chosen = parse_methods([method], cfg.method_params)
        r = _run_distill(cfg, parse_seeds(seeds), sorted({0, teachers}), chosen, dev, Path(out),
                         Engine.for_device(dev, workers, engine))
    click.echo(simulate_table(r, teachers, chosen[0].spec))
    click.echo(f"results in {Path(out) / 'results.json'}")
    click.echo("next: E = 0..4 on 8 seeds, judged by the decision rule: multiview sweep --teachers 0-4 --methods "
               "fkd,kd --seeds 8 --out runs/sweep && multiview report runs/sweep/results.json --decompose "
               "(docs/usage.md)")


@main.command()
@click.option("--teachers", "-E", "counts", default="0-4", show_default=True, help="Teacher counts: 0-6 or 0,2,4.")
@click.option("--methods", default="fkd,kd,ce", show_default=True,
              help=f"Comma list of methods ({', '.join(METHODS)}), each optionally with parameters "
                   "(fkd:lambda=20,feature_reg=0.01); 'all' runs every registered method.")
@click.option("--seeds", default="8", show_default=True, help=SEEDS_HELP)
@click.option("--out", type=click.Path(file_okay=False), default="runs/sweep", show_default=True)
@click.option("--teacher-pool", type=click.Path(file_okay=False), default=None,
              help="Folder of trained teachers, shared by sweeps of the same seeds and settings [OUT/teachers].")
@common
def sweep(
    counts: str, methods: str, seeds: str, out: str, teacher_pool: str | None, device: str, workers: int | None,
    engine: str, config_file: str | None, overrides: tuple[str, ...],
) -> None:
    """Seeds x teacher counts x methods into one results file; a killed sweep resumes from its finished seeds.

    Under torchrun the seeds are shared out by rank and rank 0 merges the results.
    """
    from multiview.report import markdown_report

    with user_errors():
        cfg = build_config(config_file, overrides)
        dev = resolve_device(device)
        chosen = parse_methods(methods, cfg.method_params)
        r = _run_distill(cfg, parse_seeds(seeds), parse_counts(counts), chosen, dev, Path(out),
                         Engine.for_device(dev, workers, engine), Path(teacher_pool) if teacher_pool else None)
    if is_main():
        click.echo(markdown_report(r))
        click.echo(f"results in {Path(out) / 'results.json'}")


@main.command()
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Figure file (.png, .pdf).")
@click.option("--judge-seeds", default=None, help="Rule v2's figure on these fresh seeds (as --seeds: 8-15): each "
              "method and the teachers' ensemble per seed, the theory, the own-baseline law and the verdicts.")
@click.option("--caption", default="", help="Text under the verdict figure (regime, seeds, machine).")
def plot(results: str, output: str, judge_seeds: str | None, caption: str) -> None:
    """Failure rate against E (log2 axis) with 95% intervals and the theory lines; the mechanism panel."""
    from multiview.plot import plot_results, plot_verdict

    with user_errors():
        r = read_distill(Path(results))
        try:
            if judge_seeds:
                plot_verdict(r, parse_seeds(judge_seeds), Path(output), caption)
            else:
                plot_results(r, Path(output))
        except ValueError as e:
            raise UserError(str(e)) from None
    click.echo(f"wrote {output}")


@main.command()
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("--decompose", is_flag=True, help="Only the decomposition per (method, E): teachers' views taken, "
              "views nobody had, own views kept, uncovered / ideal, failure / law, and rule v2's verdict.")
@click.option("--judge-seeds", default=None, help="The fresh seeds rule v2 judges, never seeds that chose a setting "
              "(as --seeds: a range like 8-15, a list, or a count N for 0..N-1) [every seed of the file].")
def report(results: str, decompose: bool, judge_seeds: str | None) -> None:
    """The sweep as Markdown tables (mean and 95% interval over seeds), its decomposition and rule v2's verdict."""
    from multiview.decompose import decomposition_markdown
    from multiview.report import markdown_report
    from multiview.verdict import verdict_markdown

    with user_errors():
        r = read_distill(Path(results))
        seeds = parse_seeds(judge_seeds) if judge_seeds else None
        if seeds is not None and not set(seeds) <= set(r.seeds_done):
            raise UserError(f"--judge-seeds {judge_seeds}: the file holds seeds {r.seeds_done}; judge seeds it has")
        parts = [decomposition_markdown(r if seeds is None else r.only(seeds)), verdict_markdown(r, seeds)]
        text = "\n\n".join(parts if decompose else [markdown_report(r), *parts])
    click.echo(text)


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The merged results.json.")
def merge(results: tuple[str, ...], out: str) -> None:
    """Merge results files of one experiment run on different seeds (lanes, or a sweep extended) into one."""
    from multiview.shard import merge_files

    with user_errors():
        merged = merge_files([Path(r) for r in results])
        write_results(Path(out), merged)
    click.echo(f"seeds {merged.seeds_done} -> {out}")


@main.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where the table goes: OUT.md (Markdown) and OUT.json (every clause's numbers).")
def verdicts(manifest: str, out: str) -> None:
    """Rule v2 on every sweep a manifest lists, as one table with each verdict's failing clause.

    The manifest is JSON: {"entries": [{"label", "results", "seeds", "fresh", "readme"}, ...]}; the table: regime,
    method, seeds, failure / L(E) at E = 1..4, ensemble / L(E), the regime's numbers, the verdict."""
    from multiview.verdicts_table import write_verdicts

    with user_errors():
        md = write_verdicts(Path(manifest), Path(out))
    click.echo(md)


__all__ = ["main", "run_script", "set_numerics"]
