"""Generation eval (issue 28): the model answers held-out prompts in batches, the profile scores
each answer, and the run logs the share of answers that pass each check as eval/<metric>.
`python -m trainer.eval RUN_DIR` scores a finished run (or a sweep's every job) the same way."""
