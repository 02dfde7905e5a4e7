"""objective=dpo|simpo: bad values and the combinations pairs cannot train with are refused
before anything loads, each in one line naming its keys; the shipped options are valid."""

from __future__ import annotations

import pytest

from tests.helpers import problems_of
from trainer.config.schema import PREFERENCE_METRICS
from trainer.config.validate import validate_config
from trainer.facts import gather_facts
from trainer.modeling.preference_trainer import preference_summary
from trainer.sweep.metrics import objective


@pytest.mark.parametrize("objective", ["sft", "dpo", "simpo"])
def test_every_shipped_objective_is_valid(make_config, objective):
    validate_config(make_config(f"objective={objective}"), gather_facts())


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (["objective.beta=0"], "objective.beta must be > 0 (got 0.0)"),
        (["objective.gamma=-1"], "objective.gamma must be >= 0 (got -1.0)"),
        (["objective.loss_type=kto"], "objective.loss_type=kto is unknown; choose one of sigmoid, ipo, hinge"),
    ],
)
def test_bad_values_are_named(make_config, overrides, problem):
    assert problems_of(make_config("objective=dpo", *overrides)) == [problem]


def test_an_unknown_objective_is_named(make_config):
    assert problems_of(make_config("objective.name=kto")) == [
        "objective.name=kto is unknown; choose one of sft, dpo, simpo"
    ]


def test_simpo_has_the_sigmoid_loss_only(make_config):
    assert problems_of(make_config("objective=simpo", "objective.loss_type=ipo")) == [
        "objective=simpo has the sigmoid loss only (got objective.loss_type=ipo)"
    ]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.streaming=true", "data.streaming=true"),
        ("data.tokens_per_batch=1024", "data.tokens_per_batch=1024"),
        ("data.packing=false", "data.packing=false"),
        ("eval.enabled=true", "eval.enabled=true"),
        ("distributed.nproc_per_node=2", "distributed.nproc_per_node=2"),
    ],
)
def test_what_pairs_cannot_train_with_is_refused_naming_the_key(make_config, override, key):
    problems = [
        problem for problem in problems_of(make_config("objective=dpo", override)) if "objective=dpo" in problem
    ]
    assert len(problems) == 1 and key in problems[0], problems


def test_sft_runs_ignore_the_preference_keys(make_config):
    validate_config(make_config("objective.beta=0", "data.packing=false"), gather_facts())


def test_every_preference_metric_in_result_json_ranks_a_sweep_of_preference_runs_only(make_config):
    history = [
        {name: float(at) for at, name in enumerate(PREFERENCE_METRICS)},
        {f"eval_{name}": 10.0 + at for at, name in enumerate(PREFERENCE_METRICS)},
    ]
    result = {"success": True, "summary": preference_summary(history)}
    assert len(result["summary"]) == 2 * len(PREFERENCE_METRICS)
    for name, value in result["summary"].items():
        for objective_name in ("dpo", "simpo"):
            validate_config(make_config(f"objective={objective_name}", f"sweep.metric={name}"), gather_facts())
        assert objective(result, name) == value
        assert problems_of(make_config(f"sweep.metric={name}")) == [
            f"sweep.metric={name} is unknown; choose one of eval_loss, final_loss, tokens_per_sec"
        ]
