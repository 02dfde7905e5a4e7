"""Sweeps (`--multirun`): the summary across jobs, job reuse on resume, and the resume command."""
