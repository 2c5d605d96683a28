"""The ``multiview`` command line: train, simulate, sweep, plot, report."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch

from fkd.runtime import resolve_device
from multiview.config import Config, ConfigError
from multiview.distill import METHODS, check_methods
from multiview.experiment import distill_experiment, population_experiment, read_results, write_json
from multiview.report import views_text

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(context_settings=CONTEXT)
def main() -> None:
    """Simulate the multi-view theory: the per-class lottery and distillation from E teachers."""


def _fail(e: Exception) -> None:
    raise click.ClickException(str(e)) from None


def run_script(script_main: Callable[[], None]) -> None:
    """Entry point of the experiment scripts under scripts/: denormals flushed to zero, and the package's one-line
    errors (config, device, results folder: ValueErrors, as in the commands here) printed as ``Error: ...``."""
    torch.set_flush_denormal(True)
    try:
        script_main()
    except ValueError as e:
        sys.exit(f"Error: {e}")


def build_config(config_file: str | None, overrides: tuple[str, ...]) -> Config:
    """The default config, updated from a JSON file, then from KEY=VALUE overrides (values parsed as JSON)."""
    try:
        cfg = Config.load(config_file) if config_file else Config()
        changes: dict[str, Any] = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
            try:
                changes[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                changes[key.strip()] = value
        return Config.from_dict({**cfg.to_dict(), **changes}) if changes else cfg
    except ConfigError as e:
        _fail(e)
        raise  # unreachable


def common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one config value (repeatable), e.g. --set k=20 --set fkd_lambda=8.",
    )(f)
    f = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        help="JSON file of config values (a results.json works too).",
    )(f)
    return click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")(f)


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except ValueError as e:
        _fail(e)
        raise


class Progress:
    """A one-line progress display on stderr: steps done, elapsed time, current phase."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.done, self.start = total, label, 0, time.time()
        self.enabled, self.last = enabled and sys.stderr.isatty(), 0.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.time()
        if self.enabled and (now - self.last > 0.5 or self.done >= self.total):
            self.last = now
            pct = 100 * min(self.done / max(self.total, 1), 1)
            sys.stderr.write(
                f"\r{self.label}: {pct:5.1f}% ({self.done}/{self.total} network-steps, {now - self.start:.0f}s)"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


@main.command()
@click.option("--models", "-M", default=4, show_default=True, type=click.IntRange(1), help="Networks to train.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Data and init seed.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/train", show_default=True)
@common
def train(models: int, seed: int, out: str, device: str, config_file: str | None, overrides: tuple[str, ...]) -> None:
    """Train a population of M networks with cross-entropy and measure the lottery (writes OUT/results.json)."""
    cfg = build_config(config_file, overrides)
    dev = _device(device)
    progress = Progress(models * cfg.max_steps, f"training {models} networks on {dev.type}")
    r = population_experiment(cfg, models, seed, dev, progress)
    progress.close()
    write_json(Path(out) / "results.json", r)
    click.echo(f"views learned: {r['view_threshold']}  (per class: 1 first view, 2 second, B both, - none)")
    click.echo(f"{'net':>3}  {'train acc':>9}  {'multi err':>9}  {'single fail':>11}  {'uncovered':>9}  views")
    for i, n in enumerate(r["networks"]):
        click.echo(
            f"{i:>3}  {n['train_accuracy']:9.3f}  {n['multi_view_error']:9.3f}  "
            f"{n['single_view_failure']:11.3f}  {n['uncovered_fraction']:9.3f}  {views_text(n['views_learned'])}"
        )
    click.echo(f"{'E':>3}  {'multi err':>9}  {'single fail':>11}  {'uncovered':>9}  predicted (independent lotteries)")
    for e in r["ensembles"]:
        click.echo(
            f"{e['size']:>3}  {e['multi_view_error']:9.3f}  {e['single_view_failure']:11.3f}  "
            f"{e['uncovered_fraction']:9.3f}  {e['predicted_uncovered']:.3f}"
        )
    from multiview.report import lottery_report

    click.echo(lottery_report(r["networks"]))
    click.echo(f"results in {Path(out) / 'results.json'}")


def parse_counts(text: str) -> list[int]:
    """'0-4' or '0,1,3' or '2' -> sorted distinct teacher counts (each >= 0)."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise click.BadParameter(f"{text!r}: use a number, a range like 0-6, or a list like 0,2,4") from None
    if not out or min(out) < 0:
        raise click.BadParameter(f"{text!r}: teacher counts must be >= 0")
    return sorted(out)


def _run_distill(
    cfg: Config, seeds: list[int], counts: list[int], methods: list[str], dev: torch.device, out: Path
) -> dict[str, Any]:
    try:
        check_methods(methods)
    except ValueError as e:
        _fail(e)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    shard_out = out if world == 1 else out / "shards" / f"rank{rank}"
    per_seed = (cfg.max_steps * max(counts) if max(counts) else 0) + cfg.student_steps * (
        1 + len(methods) * len(counts)
    )
    progress = Progress(per_seed * len(seeds[rank::world]), f"seeds {seeds[rank::world]} on {dev}")
    try:
        r = distill_experiment(cfg, seeds[rank::world], counts, methods, dev, shard_out, progress)
    except ValueError as e:
        progress.close()
        _fail(e)
    progress.close()
    if world > 1:
        from multiview.shard import merge_shards

        r = merge_shards(out, world, rank)
    return r


@main.command()
@click.option("--teachers", "-E", default=2, show_default=True, type=click.IntRange(0), help="Number of teachers E.")
@click.option("--method", default="fkd", show_default=True, type=click.Choice(METHODS))
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1), help="Seeds 0..S-1.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/simulate", show_default=True)
@common
def simulate(
    teachers: int, method: str, seeds: int, out: str, device: str, config_file: str | None, overrides: tuple[str, ...]
) -> None:
    """The main job: E teachers, then a student distilled from them, against the theory 2^-(E+1)."""
    cfg = build_config(config_file, overrides)
    dev = _device(device)
    r = _run_distill(cfg, list(range(seeds)), sorted({0, teachers}), [method], dev, Path(out))
    from multiview.report import simulate_table

    click.echo(simulate_table(r, teachers, method))
    click.echo(f"results in {Path(out) / 'results.json'}")


@main.command()
@click.option("--teachers", "-E", "counts", default="0-4", show_default=True, help="Teacher counts: 0-6 or 0,2,4.")
@click.option("--methods", default="fkd,kd,ce", show_default=True, help=f"Comma list from {','.join(METHODS)}.")
@click.option("--seeds", default=8, show_default=True, type=click.IntRange(1), help="Seeds 0..S-1.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/sweep", show_default=True)
@common
def sweep(
    counts: str, methods: str, seeds: int, out: str, device: str, config_file: str | None, overrides: tuple[str, ...]
) -> None:
    """Seeds x teacher counts x methods into one results file; a killed sweep resumes from its finished seeds.

    Under torchrun the seeds are shared out by rank and rank 0 merges the results.
    """
    cfg = build_config(config_file, overrides)
    dev = _device(device)
    r = _run_distill(
        cfg, list(range(seeds)), parse_counts(counts), [m.strip() for m in methods.split(",")], dev, Path(out)
    )
    if int(os.environ.get("RANK", 0)) == 0:
        from multiview.report import markdown_report

        click.echo(markdown_report(r))
        click.echo(f"results in {Path(out) / 'results.json'}")


@main.command()
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Figure file (.png, .pdf).")
def plot(results: str, output: str) -> None:
    """Failure rate against E (log2 axis) with 95% intervals and the theory lines; the mechanism panel."""
    from multiview.plot import plot_results

    try:
        plot_results(read_results(Path(results)), Path(output))
    except ValueError as e:
        _fail(e)
    click.echo(f"wrote {output}")


@main.command()
@click.argument("results", type=click.Path(dir_okay=False))
def report(results: str) -> None:
    """The sweep as Markdown tables (mean and 95% interval over seeds)."""
    from multiview.report import markdown_report

    try:
        click.echo(markdown_report(read_results(Path(results))))
    except ValueError as e:
        _fail(e)


__all__ = ["main"]
