"""The ``multiview`` command as installed: its ``--help`` lists the commands without importing torch; a command
runs from :mod:`multiview.cli`."""

from fkdapp.lazycli import LazyGroup

main = LazyGroup(
    "multiview", "multiview.cli", on_load="set_numerics",
    help="Simulate the multi-view theory: the per-class lottery and distillation from E teachers.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    summaries={
        "train": "Train a population of M networks with cross-entropy and measure the lottery (writes "
                 "OUT/results.json).",
        "simulate": "The main job: E teachers, then a student distilled from them, against the theory 2^-(E+1).",
        "sweep": "Seeds x teacher counts x methods into one results file; a killed sweep resumes from its finished "
                 "seeds.",
        "plot": "Failure rate against E (log2 axis) with 95% intervals and the theory lines; the mechanism panel.",
        "report": "The sweep as Markdown tables (mean and 95% interval over seeds), its decomposition and rule v2's "
                  "verdict.",
        "merge": "Merge results files of one experiment run on different seeds (lanes, or a sweep extended) into one.",
        "verdicts": "Rule v2 on every sweep a manifest lists, as one table with each verdict's failing clause.",
    },
)
