"""Monitoring: the run's log file, console progress and TensorBoard."""
