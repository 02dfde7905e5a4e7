"""A mixture of sources, each with a weight (its share of the assistant tokens) or a number of
examples, is one training set: its composition follows the weights, it is the same for the same
seed, and changing a weight re-tokenizes nothing (each source has its own cache entry)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import kill_at_checkpoint, losses_by_step, problems_of, read_json, resume
from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data import encoding
from trainer.data.mixture import row_counts, tokenize_data_split
from trainer.data.split import load_data_split
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile
from trainer.run.layout import RunDirectory

PROFILE = PlainProfile(ProfileConfig(), seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


def mixed(sources, tokenizer, cache_dir, seed=0, weights=(3, 1)):
    train = [{"path": str(path), "weight": weight} for path, weight in zip(sources, weights, strict=True)]
    config = DataConfig(train=train, validation_max_samples=8, max_length=256)
    split = load_data_split(config, PROFILE, seed)
    return tokenize_data_split(split, PROFILE, "Be brief.", tokenizer, 256, cache_dir=cache_dir)


def test_the_sources_share_the_assistant_tokens_as_weighted(sources, tokenizer, tmp_path):
    data = mixed(sources, tokenizer, tmp_path / "cache")
    short, long = (account["assistant_tokens"] for account in data.stats["sources"])
    assert short / long == pytest.approx(3.0, rel=0.01)
    # The mixture holds as many assistant tokens as its sources: the long one is sampled down.
    assert sum(row_counts(data.train)[1]) == short + long
    assert data.stats["sources"][1]["examples"] < data.stats["sources"][1]["available_examples"]


def test_the_same_seed_makes_the_same_training_set_in_the_same_order(sources, tokenizer, tmp_path):
    first = mixed(sources, tokenizer, tmp_path / "cache")
    again = mixed(sources, tokenizer, tmp_path / "other-cache")
    other_seed = mixed(sources, tokenizer, tmp_path / "cache", seed=1)
    assert first.train["input_ids"] == again.train["input_ids"]
    assert first.train["input_ids"] != other_seed.train["input_ids"]


def test_changing_a_weight_re_tokenizes_nothing(sources, tokenizer, tmp_path, monkeypatch):
    mixed(sources, tokenizer, tmp_path / "cache")
    monkeypatch.setattr(encoding, "tokenize_examples", pytest.fail)
    data = mixed(sources, tokenizer, tmp_path / "cache", weights=(1, 1))
    assert data.from_cache and all(account["read_from_cache"] for account in data.stats["sources"])
    short, long = (account["assistant_tokens"] for account in data.stats["sources"])
    assert short / long == pytest.approx(1.0, rel=0.01)


def test_a_source_with_a_number_of_examples_gives_exactly_that_many(sources, tokenizer, tmp_path):
    short, long = sources
    train = [{"path": str(short), "weight": 1}, {"path": str(long), "examples": 500}]
    split = load_data_split(DataConfig(train=train, validation_max_samples=8), PROFILE, 0)
    data = tokenize_data_split(split, PROFILE, "Be brief.", tokenizer, 256)
    assert [account["examples"] for account in data.stats["sources"]][1] == 500
    assert len(data.train) == sum(account["examples"] for account in data.stats["sources"])


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[{path: A, weight: 0}]", "data.train[0].weight must be a number > 0 (got 0)"),
        ("[{path: A, weight: 1}, {path: B}]", "data.train[1] needs either a weight (> 0) or a number of examples (>= 1) to be mixed"),
        ("[]", "data.train is an empty list: a mixture is a non-empty list of sources in data.train"),
        ("{path: A, weight: 2}", "data.train.weight applies to a source of a mixture (data.train as a list of sources)"),
        ("[{path: A, weight: 1, examples: 3}]", "data.train[0] needs either a weight (> 0) or a number of examples (>= 1) to be mixed"),
    ],
)  # fmt: skip
def test_a_malformed_mixture_is_one_line_naming_the_source(make_config, sources, value, problem):
    value = value.replace("A", str(sources[0])).replace("B", str(sources[1]))
    assert problems_of(make_config(f"data.train={value}")) == [problem]


MIX_RUN = ["train.max_steps=6", "train.save_steps=3", "train.logging_steps=1", "train.eval_steps=6", "train.per_device_train_batch_size=4"]  # fmt: skip


@pytest.mark.long
@pytest.mark.slow
def test_a_mixture_killed_and_resumed_trains_on_the_same_examples_in_the_same_order(
    run_cli, sources, model_cache, tmp_path
):
    short, long = sources
    mixture = f"data.train=[{{path: {short}, weight: 3}}, {{path: {long}, weight: 1}}]"
    reference = tmp_path / "reference"
    completed = run_cli(mixture, *MIX_RUN, f"hydra.run.dir={reference}", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    accounts = read_json(reference / "result.json")["summary"]["sources"]
    assert accounts == read_json(reference / "tokenized.json")["stats"]["sources"]
    assert accounts[0]["assistant_tokens"] / accounts[1]["assistant_tokens"] == pytest.approx(3.0, rel=0.01)
    events = EventAccumulator(str(RunDirectory(reference).tensorboard_dir))
    events.Reload()
    for position, account in enumerate(accounts):
        [scalar] = events.Scalars(f"data/source_{position}/assistant_tokens")
        assert scalar.value == account["assistant_tokens"]

    killed = tmp_path / "killed"
    kill_at_checkpoint(model_cache, killed, 3, mixture, *MIX_RUN)
    changed = resume(killed, mixture.replace("weight: 1", "weight: 2"))
    assert changed.returncode == 2 and "Cannot resume with data.train=" in changed.stderr
    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    losses = losses_by_step(killed)
    assert [step for step, _ in losses] == list(range(1, 7))
    assert [loss for _, loss in losses] == pytest.approx([loss for _, loss in losses_by_step(reference)], abs=1e-5)


def test_a_data_setup_is_a_group_option_over_which_data_keys_still_apply(sources, tmp_path):
    short, long = sources
    (tmp_path / "conf" / "data").mkdir(parents=True)
    setup = {
        "train": [{"path": str(short), "weight": 3}, {"path": str(long), "weight": 1}],
        "validation_max_samples": 4,
    }
    (tmp_path / "conf" / "data" / "my_mix.yaml").write_text(yaml.safe_dump(setup))
    command = [sys.executable, "-m", "trainer", "--cfg", "job", "--config-dir", str(tmp_path / "conf")]
    completed = subprocess.run([*command, "data=my_mix", "data.max_length=100"], capture_output=True, text=True)
    data = yaml.safe_load(completed.stdout)["data"]
    assert data["train"] == setup["train"]
    assert (data["validation_max_samples"], data["max_length"]) == (4, 100)
