"""Everything about one run's directory and life: `layout` (every path), `files` (atomic writes),
`status` (status.json), `outcome` (TrainingResult, exit codes), `resume` (resume=DIR), `rendezvous`
(one run directory for every rank), `overrides` (the run's recorded Hydra overrides)."""
