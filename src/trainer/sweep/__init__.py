"""Sweeps (`--multirun`): the job listing and summary across jobs, job reuse on resume; the
resume command is trainer.cli.main.sweep_command."""
