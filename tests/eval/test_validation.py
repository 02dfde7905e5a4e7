"""Generation eval, early stopping and best-checkpoint settings a run refuses before it starts."""

from __future__ import annotations

from tests.helpers import problems_of


def test_a_metric_the_profile_does_not_score_is_refused_naming_the_ones_it_does(make_config):
    problems = problems_of(
        make_config("profile=plain", "eval.enabled=true", "train.early_stopping.metric=eval/well_formed_answer")
    )
    assert problems == [
        "train.early_stopping.metric=eval/well_formed_answer is not a metric of profile=plain; "
        "it scores answers by eval/exact_match"
    ]


def test_a_sweep_metric_no_run_logs_is_refused(make_config):
    problems = problems_of(make_config("profile=regime3", "sweep.metric=eval/exact_match", "sweep.mode=max"))
    assert problems == [
        "sweep.metric=eval/exact_match is logged by no run with eval.enabled=false; set eval.enabled=true"
    ]


def test_an_eval_metric_is_a_sweep_metric_when_the_run_logs_it(make_config):
    from trainer.config.validate import validate_config
    from trainer.facts import gather_facts

    validate_config(
        make_config("profile=regime3", "eval.enabled=true", "sweep.metric=eval/well_formed_answer"), gather_facts()
    )


def test_patience_without_evaluations_is_refused(make_config):
    problems = problems_of(make_config("data.validation_split=0", "train.early_stopping.patience=2"))
    assert len(problems) == 1
    assert problems[0].startswith("train.early_stopping / train.keep_best / train.final_model=best needs evaluations")


def test_eval_max_samples_must_be_positive(make_config):
    assert problems_of(make_config("eval.max_samples=0")) == ["eval.max_samples must be > 0 (got 0)"]


def test_keep_best_needs_a_checkpoint_at_every_evaluation(make_config):
    problems = problems_of(make_config("train.keep_best=true", "train.eval_steps=4", "train.save_steps=6"))
    assert problems == [
        "train.keep_best needs a checkpoint at every evaluation that may be the best: "
        "train.save_steps=6 must be a multiple of train.eval_steps=4"
    ]
