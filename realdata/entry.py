"""The ``realdata`` command as installed: its ``--help`` lists the commands without importing torch; a command
runs from :mod:`realdata.cli`."""

from fkdapp.lazycli import LazyGroup

main = LazyGroup(
    "realdata", "realdata.cli",
    help="Train teachers and distil students on images with FKD and its baselines.\n\nSeveral GPUs: torchrun "
         "--nproc-per-node N -m realdata distill ... (--batch-size is the global batch).",
    context_settings={"help_option_names": ["-h", "--help"]},
    summaries={
        "train": "Train a network with cross-entropy alone (a teacher, or a student without distillation).",
        "distill": "Distil a student from one teacher or an ensemble.",
        "resume": "Continue a killed or stopped run from its folder alone (its recorded config and last.pt).",
        "evaluate": "Print the test accuracy of a checkpoint, or of several as an ensemble (mean logits); writes "
                    "nothing unless --json is given.",
        "report": "A Markdown table of run folders (or folders holding them): last and best test accuracy over seeds.",
        "plot": "Test accuracy per epoch of run folders (or folders holding them): mean ± std over seeds per run "
                "group.",
    },
)
