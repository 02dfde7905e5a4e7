"""The benchmark compares like with like: on the same data and seed, `trainer` and the plain
transformers script it is measured against take the very same steps."""

from __future__ import annotations

from bench.contenders import run_plain_transformers, run_trainer
from bench.report import section_of, with_section
from bench.workload import Workload, engine_config, tokenized_data, write_chats

WORKLOAD = Workload(chats=24, batch=2, steps=3, logging_steps=1)


def test_trainer_and_the_plain_transformers_script_have_the_same_per_step_losses(tmp_path, model_cache):
    write_chats(tmp_path / "chats.jsonl", WORKLOAD.chats)
    config = engine_config(WORKLOAD, tmp_path, model_cache)

    trainer = run_trainer(config)
    plain = run_plain_transformers(config, tokenized_data(config))

    assert len(trainer.losses) == len(plain.losses) == WORKLOAD.steps
    assert max(abs(a - b) for a, b in zip(trainer.losses, plain.losses, strict=True)) <= 1e-5
    # Both count the same real (non-pad) tokens.
    assert trainer.tokens == plain.tokens


def test_a_benchmark_rewrites_only_its_own_section_of_the_results():
    document = "# Benchmark results\n\ntraining table\n\n## Data preparation\n\nold data table\n\n## Other\n\nkept\n"
    updated = with_section(document, "Data preparation", "new data table")
    assert (
        updated
        == "# Benchmark results\n\ntraining table\n\n## Data preparation\n\nnew data table\n\n## Other\n\nkept\n"
    )
    assert section_of(updated, "Data preparation").strip() == "new data table"
    appended = with_section("# Benchmark results\n", "Data preparation", "table")
    assert appended == "# Benchmark results\n\n## Data preparation\n\ntable\n" and section_of(appended, "Other") is None
