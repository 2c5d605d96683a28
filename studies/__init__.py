"""Experiment protocols as tested functions: sweeps run resumably, select-then-report, per-E summaries.

The scripts under ``scripts/`` are argument parsing plus one call here.
"""
