"""fkdapp: the application layer shared by the ``multiview`` and ``realdata`` commands.

Nothing here is maths: configs from files and ``--set KEY=VALUE`` overrides (:mod:`fkdapp.settings`), the one-line
user errors and their mapping to the CLI (:mod:`fkdapp.errors`), progress lines (:mod:`fkdapp.progress`), process
ranks under torchrun, devices, environment records and atomic writes (:mod:`fkdapp.runtime`). The loss maths in
:mod:`fkd` imports none of it.
"""
