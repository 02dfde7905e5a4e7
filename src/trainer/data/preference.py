"""Preference records: a prompt with a better (`chosen`) and a worse (`rejected`) answer, read,
checked, shaped by the profile and tokenized with the same template layout as SFT.

Accepted shapes (TRL's): `prompt` + `chosen` + `rejected`, each a string or a list of messages
(the prompt's messages end before the answer, the answers are assistant messages); `chosen` +
`rejected` alone, two whole conversations whose shared start is the prompt (TRL's implicit
prompt); ShareGPT `conversations` + `chosen` + `rejected` (`from`/`value` turns). Each becomes
`{"prompt": [...], "chosen": [...], "rejected": [...]}`, message lists.

The profile shapes `prompt + chosen` and `prompt + rejected` as two examples of the same index,
so both get the same per-example choices (the same system prompt, the same emojis): the pair
differs only in what the answers say. Each is rendered once with the run's chat template; the
labels are the answer's tokens plus its end-of-turn, located as SFT locates them
(`trainer.modeling.template_layout`), and nothing of the prompt (earlier assistant turns
included).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import pyarrow
import pyarrow.ipc
from datasets import Features, List, Value
from transformers import PreTrainedTokenizerBase

from trainer.config.schema import DataConfig
from trainer.config.sources import DataSource
from trainer.data.cache import tokenizer_digest
from trainer.data.cache_entry import TokenizedData, cached_or_built, entry_key
from trainer.data.checking import checked_example, record_problem, report_bad_records
from trainer.data.encoding import list_array
from trainer.data.formats import RecordShapeError, as_messages, sharegpt_messages, with_plain_parts
from trainer.data.loading import SAMPLE_DATA, Record, iter_records
from trainer.data.sources import configured_source, reads_repository, repository_records
from trainer.data.split import held_out_mask
from trainer.data.tokenization import TokenizedBatch, tokenize_rendered
from trainer.errors import DataError
from trainer.modeling.template_layout import TemplateError, assistant_answer_spans
from trainer.profiles.base import Profile

log = logging.getLogger(__name__)

# The sample chats as pairs: the right result chosen, the same answer with a result one off rejected.
PREFERENCE_SAMPLE = SAMPLE_DATA.with_name("arithmetic_preferences.jsonl")
PREFERENCE_SHAPES = (
    "'prompt' + 'chosen' + 'rejected' (strings or lists of messages), 'chosen' + 'rejected' conversations "
    "that share their prompt, or 'conversations' (ShareGPT) + 'chosen' + 'rejected'"
)
ANSWERS = ("chosen", "rejected")
PAIR_FEATURES = Features(
    {
        "chosen_input_ids": List(Value("int32")),
        "chosen_labels": List(Value("int32")),
        "rejected_input_ids": List(Value("int32")),
        "rejected_labels": List(Value("int32")),
    }
)


@dataclass
class PreferenceSplit:
    """Checked pairs, (index in its file, record) with the record's example in the internal form."""

    train: list[tuple[int, Record]]
    validation: list[tuple[int, Record]]
    skipped: int = 0

    def chats(self) -> ChatView:
        """The pairs as the chats of their chosen answers: what previews draw prompts from."""
        return ChatView(chosen_chats(self.train), chosen_chats(self.validation))


@dataclass
class ChatView:
    train: list[tuple[int, Record]]
    validation: list[tuple[int, Record]]


def chosen_chats(pairs: list[tuple[int, Record]]) -> list[tuple[int, Record]]:
    return [
        (index, Record({"messages": record.example["prompt"] + record.example["chosen"]}, *location(record)))
        for index, record in pairs
    ]


def location(record: Record) -> tuple[str, int, str]:
    return record.source, record.line, record.unit


def to_preference_example(record: Any) -> dict[str, list]:
    """`record` as {"prompt", "chosen", "rejected"} message lists; raises `RecordShapeError`."""
    if not isinstance(record, dict):
        raise RecordShapeError(f"expected an object with {PREFERENCE_SHAPES}, got {type(record).__name__}")
    missing = [key for key in ANSWERS if key not in record]
    if missing:
        found = ", ".join(map(repr, record)) or "none"
        what = "a prompt without answers" if "prompt" in record and len(missing) == 2 else f"no {missing[0]!r}"
        raise RecordShapeError(f"{what}: a preference record needs {PREFERENCE_SHAPES}; found keys {found}")
    if "conversations" in record:
        prompt = sharegpt_messages(record["conversations"])
        chosen, rejected = (sharegpt_messages(as_list(record[key])) for key in ANSWERS)
    elif "prompt" in record:
        prompt = as_messages(record["prompt"], "prompt", "user")
        chosen, rejected = (as_messages(record[key], key, "assistant") for key in ANSWERS)
    else:
        prompt, chosen, rejected = split_implicit_prompt(record["chosen"], record["rejected"])
    return {
        "prompt": plain(prompt),
        "chosen": plain(chosen),
        "rejected": plain(rejected),
    }


def as_list(value: Any) -> Any:
    """A ShareGPT answer: one {from, value} turn or a list of them."""
    return [value] if isinstance(value, dict) else value


def plain(messages: list) -> list:
    """Messages with content parts joined and tool calls parsed, as SFT records get them."""
    return with_plain_parts({}, messages)["messages"]


def split_implicit_prompt(chosen: Any, rejected: Any) -> tuple[list, list, list]:
    """Two conversations' shared leading messages as the prompt, the rest of each as its answer."""
    if not (isinstance(chosen, list) and isinstance(rejected, list)):
        raise RecordShapeError("'chosen' and 'rejected' without a 'prompt' must be lists of messages")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    return chosen[:shared], chosen[shared:], rejected[shared:]


def preference_problems(example: dict[str, list], profile: Profile) -> list[str]:
    """What keeps a pair from training: the profile's checks of each conversation, a prompt that
    ends in an answer, answers that are not assistant turns, empty or identical answers."""
    problems = []
    if not example["prompt"]:
        problems.append("empty prompt")
    for key in ANSWERS:
        answer = example[key]
        if problems := problems + profile.validate_example({"messages": example["prompt"] + answer}):
            continue
        if not answer:
            problems.append(f"empty {key!r} answer")
        elif any(message.get("role") != "assistant" for message in answer):
            problems.append(f"{key!r} must hold assistant messages only (the answer to the prompt)")
        elif not any(message.get("content") or message.get("tool_calls") for message in answer):
            problems.append(f"empty {key!r} answer")
    if not problems and example["prompt"][-1].get("role") == "assistant":
        problems.append("the prompt ends with an assistant turn: the answers must follow a user turn")
    if not problems and example["chosen"] == example["rejected"]:
        problems.append("'chosen' equals 'rejected': the pair prefers nothing")
    return problems


def checked_pairs(
    path: Path | str, profile: Profile, on_bad_record: str, read: Iterable[Record] | None = None
) -> tuple[list[tuple[int, Record]], int]:
    """The valid pairs of `path` in the internal form and how many bad ones were skipped; with
    on_bad_record=error every bad record is named in one `DataError`."""
    pairs, problems, total = [], [], 0
    for index, record in enumerate(read if read is not None else iter_records(Path(path))):
        total += 1
        example, found = checked_example(record, profile, to_preference_example, preference_problems)
        if found:
            problems.append(record_problem(record, index, found))
        else:
            pairs.append((index, Record(example, *location(record))))
    return pairs, report_bad_records(path, problems, total, on_bad_record)


def load_preference_split(config: DataConfig, profile: Profile, seed: int) -> PreferenceSplit:
    """The checked pairs of data.train (the sample pairs when null), and the validation pairs of
    data.validation or held out of data.train as the SFT split holds chats out."""
    train_source = configured_source(config.train, "data.train")
    train, skipped = source_pairs(train_source, profile, config.on_bad_record)
    if config.validation is not None:
        validation_source = configured_source(config.validation, "data.validation")
        validation, skipped_validation = source_pairs(validation_source, profile, config.on_bad_record)
        return PreferenceSplit(train, validation, skipped + skipped_validation)
    count = min(math.ceil(len(train) * config.validation_split), config.validation_max_samples)
    if count >= len(train):
        raise DataError([f"{train_source.name}: too few pairs ({len(train)}) to split off {count}"])
    held_out = held_out_mask(len(train), count, seed)
    return PreferenceSplit(
        train=[pair for pair, out in zip(train, held_out, strict=True) if not out],
        validation=[pair for pair, out in zip(train, held_out, strict=True) if out],
        skipped=skipped,
    )


def source_pairs(source: DataSource, profile: Profile, on_bad_record: str) -> tuple[list[tuple[int, Record]], int]:
    """`checked_pairs` of a file (the sample pairs for none), or of a dataset repository's split."""
    if reads_repository(source):
        return checked_pairs(source.name, profile, on_bad_record, repository_records(source))
    return checked_pairs(source.path or PREFERENCE_SAMPLE, profile, on_bad_record)


def pairs_digest(pairs: list[tuple[int, Record]]) -> str:
    digest = hashlib.sha256()
    for index, record in pairs:
        digest.update(f"{index}\t{json.dumps(record.example, sort_keys=True, default=str)}\n".encode())
    return digest.hexdigest()


def tokenize_preference_split(
    split: PreferenceSplit,
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: Path | None = None,
) -> TokenizedData:
    """Both sets' pairs tokenized into the cache entry of everything that shapes them (the same
    key rules as SFT's entries, plus what makes them pairs), or read back from it."""
    digest = tokenizer_digest(tokenizer)
    train, validation = pairs_digest(split.train), pairs_digest(split.validation)
    key = entry_key(train, validation, system_prompt, profile, digest, max_length, kind="preference pairs")
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="trainer-pairs-") as temporary:
            data = prepare_pairs(Path(temporary) / key, split, profile, system_prompt, tokenizer, max_length, True)
    else:
        data = prepare_pairs(cache_dir.expanduser() / key, split, profile, system_prompt, tokenizer, max_length, False)
    data.tokenizer_digest = digest
    return data


def prepare_pairs(
    entry: Path,
    split: PreferenceSplit,
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    in_memory: bool,
) -> TokenizedData:

    def write_set(name: str, pairs: list[tuple[int, Record]], output: Path, stats: dict[str, Any]) -> None:
        columns = tokenize_pairs(name, pairs, profile, system_prompt, tokenizer, max_length, stats)
        table = pyarrow.table(
            {column: list_array(rows) for column, rows in columns.items()}, schema=PAIR_FEATURES.arrow_schema
        )
        write_arrow(table, output)

    sets = {"train": split.train, "validation": split.validation}
    datasets, stats, from_cache = cached_or_built(entry, in_memory, sets, split.skipped, write_set)
    return TokenizedData(datasets["train"], datasets.get("validation"), stats, entry, from_cache)


def tokenize_pairs(
    name: str,
    pairs: list[tuple[int, Record]],
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    stats: dict[str, Any],
) -> dict[str, list[numpy.ndarray]]:
    """Each pair's two conversations tokenized, labels on its answer only; a pair whose answer
    of either side max_length cuts off entirely is dropped (and counted)."""
    batches = {key: tokenize_answers(pairs, key, profile, system_prompt, tokenizer, max_length) for key in ANSWERS}
    kept = batches["chosen"].has_assistant_tokens & batches["rejected"].has_assistant_tokens
    if not kept.any():
        raise DataError([f"{name} set: no pair keeps an answer token within data.max_length={max_length}"])
    rows = numpy.flatnonzero(kept).tolist()
    columns = {
        f"{key}_{column}": [getattr(batch, column)[row] for row in rows]
        for key, batch in batches.items()
        for column in ("input_ids", "labels")
    }
    truncated = batches["chosen"].truncated | batches["rejected"].truncated
    stats |= {
        f"{name}_examples": len(rows),
        f"{name}_truncated": int(truncated.sum()),
        f"{name}_dropped": len(pairs) - len(rows),
        f"{name}_tokens": int(sum(len(ids) for key in ANSWERS for ids in columns[f"{key}_input_ids"])),
    }
    log.info(
        "%s set: %d pairs, %d tokens, %d truncated to %d tokens, %d dropped (no answer token left)",
        name,
        len(rows),
        stats[f"{name}_tokens"],
        stats[f"{name}_truncated"],
        max_length,
        stats[f"{name}_dropped"],
    )
    return columns


def tokenize_answers(
    pairs: list[tuple[int, Record]],
    key: str,
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
) -> TokenizedBatch:
    """The `key` side of every pair: prompt + answer shaped by the profile (as the pair's index
    shapes it), rendered once, labels on the answer's turns (the last assistant turns) only."""
    rendered = []
    for index, record in pairs:
        example = record.example
        messages = profile.transform_example({"messages": example["prompt"] + example[key]}, index, system_prompt)
        try:
            text, spans = assistant_answer_spans(tokenizer, messages["messages"])
        except TemplateError as error:
            raise TemplateError(f"{record.location} (example {index}): {error}") from None
        rendered.append((text, spans[-len(example[key]) :]))
    return tokenize_rendered(tokenizer, rendered, max_length)


def write_arrow(table: pyarrow.Table, path: Path) -> None:
    """The table as an Arrow stream file, what `datasets.Dataset.from_file` reads."""
    with pyarrow.OSFile(str(path), "wb") as sink, pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
