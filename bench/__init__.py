"""Benchmarks of `trainer` against plain transformers and TRL, run the same way every time: `python -m bench`."""
