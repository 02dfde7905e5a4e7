"""The run's configuration: `schema` (TrainerConfig), `load` (DictConfig -> TrainerConfig) and
`validate` (every semantic problem, gathered)."""
