"""Property-based fuzzing of the two doors user input comes through: data files and config
overrides. Whatever comes in, the outcome is success or a located user error (exit 2), never a
crash (exit 1, a traceback). A few hundred examples run in CI; `pytest -m fuzz` runs many more."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer.cli.errors import user_error_message
from trainer.cli.main import config_dir
from trainer.config.load import register_schema, to_trainer_config
from trainer.config.schema import ProfileConfig, TrainerConfig
from trainer.config.validate import settings as config_settings
from trainer.config.validate import validate_config
from trainer.data.cache import cache_key
from trainer.data.checking import checked_records
from trainer.errors import ConfigError, DataError, UserError
from trainer.facts import gather_facts
from trainer.profiles import PROFILES, build_profile


def budgets(ci: int, long: int) -> list:
    """Examples per run: `ci` always, `long` under `pytest -m fuzz`."""
    return [pytest.param(ci, id="ci"), pytest.param(long, id="long", marks=pytest.mark.fuzz)]


RELAXED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

# --- data files ------------------------------------------------------------------------------

GOOD_RECORD = {"messages": [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}]}
# JSON values of any shape; text includes lone surrogates, written as \\udXXX escapes.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "robot", "", None, 3])
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": st.text(max_size=20) | json_values}), max_size=4)
# Records near the accepted shapes, where bugs hide: right keys, wrong or odd values.
near_records = st.one_of(
    st.fixed_dictionaries({"messages": messages | json_values}),
    st.fixed_dictionaries(
        {"conversations": st.lists(st.dictionaries(st.sampled_from(["from", "value"]), json_values))}
    ),
    st.fixed_dictionaries({"prompt": json_values, "completion": json_values}),
    st.just(GOOD_RECORD),
)


def encoded(value: object) -> st.SearchStrategy[bytes]:
    return st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]).map(
        lambda encoding: json.dumps(value).encode(encoding, errors="replace")
    )


lines = st.one_of(
    (near_records | json_values).flatmap(encoded),
    st.binary(max_size=40),
    st.integers(1, 3_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 200).map(lambda depth: b'{"messages": ' * depth + b"[]" + b"}" * depth),
    st.just(json.dumps(GOOD_RECORD).encode()),
    # More digits than Python converts to an int (sys.get_int_max_str_digits()).
    st.just(b'{"messages": ' + b"7" * 5_000 + b"}"),
)


@st.composite
def data_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, content): JSON Lines, or a JSON array of the same entries."""
    entries = draw(st.lists(lines, max_size=6))
    suffix = draw(st.sampled_from([".jsonl", ".json"]))
    if suffix == ".json" and draw(st.booleans()):
        return suffix, b"[" + b",".join(entries) + b"]"
    return suffix, b"\n".join(entries)


@pytest.mark.parametrize("examples", budgets(ci=300, long=20_000))
def test_the_data_reader_returns_records_or_a_located_data_error(examples):
    @settings(max_examples=examples, **RELAXED)
    @given(data_files(), st.sampled_from(sorted(PROFILES)), st.sampled_from(["error", "skip"]))
    def read(file: tuple[str, bytes], profile_name: str, on_bad_record: str) -> None:
        suffix, content = file
        profile = build_profile(ProfileConfig(name=profile_name), seed=0)
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / f"data{suffix}"
            path.write_bytes(content)
            try:
                records, skipped = checked_records(str(path), profile, on_bad_record)
            except DataError as error:
                assert error.problems and all(problem.startswith(str(path)) for problem in error.problems)
                return
        assert records and skipped >= 0
        # What the tokenizer and cache see next must be encodable text.
        cache_key(train=[(index, record.example) for index, record in records])
        for _, record in records:
            profile.transform_example(record.example, 0, "system prompt")

    read()


# --- config overrides ------------------------------------------------------------------------

DEFAULTS = dict(config_settings(TrainerConfig()))
KEYS = sorted(DEFAULTS)
GROUPS = ["model", "profile", "precision", "preview", "peft"]
text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=16)
quoted_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00'\\"), max_size=16).map(
    lambda value: f"'{value}'"
)
# Hydra's command line is text: values as a user might type them, odd ones included.
any_values = st.one_of(
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["null", "true", "false", "nan", "inf", "-inf", "[]", "[1,2]", "{a: 1}", "''", "${nope}"]),
    text,
    quoted_text,
)
keys = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(GROUPS),
    st.sampled_from(KEYS).map(lambda key: key[:-1]),
    st.text("abcdefghijklmnopqrstuvwxyz_.", min_size=1, max_size=20),
)
# Paths are checked against the file system: odd ones go with path keys on purpose.
PATH_KEYS = ["data.train", "data.validation", "model.path", "model.cache_dir", "distributed.deepspeed"]
paths = st.sampled_from(["'~'", "'~nosuchuser/x'", "/", "/proc", "/dev/null", ".", "'/tmp/a b'", "'C:\\x'", "''"])


def typed_values(key: str) -> st.SearchStrategy[str]:
    """Values of the setting's own type (they compose), with the edges validation must catch."""
    default = DEFAULTS[key]
    if isinstance(default, bool):
        return st.sampled_from(["true", "false"])
    if isinstance(default, int):
        return st.integers(-(2**40), 2**40).map(str)
    if isinstance(default, float):
        return st.floats().map(repr)
    if key in PATH_KEYS:
        return paths
    return quoted_text | st.just("null")


# Mostly well-typed overrides, so that most examples get past composition into validation.
typed_overrides = (st.sampled_from(KEYS) | st.sampled_from(PATH_KEYS)).flatmap(
    lambda key: typed_values(key).map(lambda value: f"{key}={value}")
)
wild_overrides = st.one_of(
    st.builds(lambda prefix, key, value: f"{prefix}{key}={value}", st.sampled_from(["", "+", "++"]), keys, any_values),
    keys.map(lambda key: f"~{key}"),
)
argument_lists = st.lists(typed_overrides, min_size=1, max_size=4) | st.lists(wild_overrides, min_size=1, max_size=2)


@pytest.fixture(scope="module")
def hydra_compose():
    register_schema()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield compose


# Each example composes the config with Hydra (~0.1 s).
@pytest.mark.parametrize("examples", budgets(ci=100, long=5_000))
def test_random_overrides_compose_validate_or_give_one_user_error(examples, hydra_compose, tmp_path):
    @settings(max_examples=examples, **RELAXED)
    @given(argument_lists)
    def run(arguments: list[str]) -> None:
        # What `python -m trainer ARGS` does before a model loads: compose, convert, validate.
        try:
            config = to_trainer_config(hydra_compose("train", [f"run.output_dir={tmp_path}", *arguments]))
            validate_config(config, gather_facts())
        except ConfigError:
            return
        except Exception as error:
            message = user_error_message(error)
            assert message is not None, f"{type(error).__name__} would be a crash (exit 1): {error}"
            assert isinstance(error, UserError) or "\n" not in message

    run()
