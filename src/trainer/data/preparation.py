"""From the data config to tokenized train/validation sets, in two steps: records are read and
checked before any model loads, then tokenized once the tokenizer exists."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from trainer.config import DataConfig
from trainer.data.cache import cache_key, load_cached, save_cached
from trainer.data.formats import RecordShapeError, conversation_problems, to_chat_example
from trainer.data.loading import DataError, Record, read_records, resolve_data_path
from trainer.data.tokenization import tokenize_with_assistant_mask
from trainer.modeling.template_layout import TemplateError
from trainer.profiles.base import Profile

log = logging.getLogger(__name__)


@dataclass
class RecordSplit:
    # (index in its file, record): the index keys the profile's per-example choices.
    train: list[tuple[int, Record]]
    validation: list[tuple[int, Record]]
    # Bad records left out under data.on_bad_record=skip.
    skipped: int = 0


@dataclass
class TokenizedData:
    train: Dataset
    validation: Dataset | None
    stats: dict[str, int] = field(default_factory=dict)


def load_record_split(config: DataConfig, profile: Profile, seed: int) -> RecordSplit:
    """Read and validate the configured files; split off a seeded validation set when none is given."""
    train, skipped = checked_records(config.train, profile, config.on_bad_record)
    if config.validation is not None:
        validation, skipped_validation = checked_records(config.validation, profile, config.on_bad_record)
        return RecordSplit(train, validation, skipped + skipped_validation)
    count = min(math.ceil(len(train) * config.validation_split), config.validation_max_samples)
    if count >= len(train):
        raise DataError([f"{resolve_data_path(config.train)}: too few records ({len(train)}) to split off {count}"])
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    held_out = set(order[:count])
    return RecordSplit(
        train=[item for position, item in enumerate(train) if position not in held_out],
        validation=[item for position, item in enumerate(train) if position in held_out],
        skipped=skipped,
    )


def checked_records(
    path: str | None, profile: Profile, on_bad_record: str = "error"
) -> tuple[list[tuple[int, Record]], int]:
    """The valid records of `path` in the internal chat form, each with its position in the file,
    and how many bad ones were skipped. With on_bad_record="error" any bad record raises one
    `DataError` that lists every bad record with its location."""
    source = resolve_data_path(path)
    records = read_records(source)
    kept, problems = [], []
    for index, record in enumerate(records):
        example, found = checked_example(record, profile)
        if found:
            problems.append(f"{record.location} (example {index}): {'; '.join(found)}")
        else:
            # The position in the file, not among the kept records: skipping one record never
            # changes the profile's per-example choices for the others.
            kept.append((index, replace(record, example=example)))
    if problems and on_bad_record == "error":
        raise DataError(problems)
    if problems:
        log.warning(
            "Skipped %d bad records of %s (data.on_bad_record=skip), e.g. %s", len(problems), source, problems[0]
        )
    if not kept:
        raise DataError([f"{source}: none of its {len(records)} records is valid"])
    return kept, len(problems)


def checked_example(record: Record, profile: Profile) -> tuple[Any, list[str]]:
    """The record's example in the internal form, and what is wrong with it (empty when valid)."""
    if record.error is not None:
        return None, [record.error]
    try:
        example = to_chat_example(record.example)
    except RecordShapeError as error:
        return None, [str(error)]
    return example, profile.validate_example(example) or conversation_problems(example)


def tokenize_split(
    split: RecordSplit,
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: Path | None = None,
) -> TokenizedData:
    """Tokenize both sets; with `cache_dir`, read them back from there when the same inputs were
    tokenized before (a resumed run), and save them there otherwise."""
    key = cache_key(
        train=[(index, record.example) for index, record in split.train],
        validation=[(index, record.example) for index, record in split.validation],
        system_prompt=system_prompt,
        profile=profile.metadata(),
        profile_seed=profile.seed,
        template=tokenizer.chat_template,
        tokenizer=[tokenizer.name_or_path, len(tokenizer)],
        max_length=max_length,
    )
    if cache_dir is not None and (cached := load_cached(cache_dir / key)) is not None:
        datasets, stats = cached
        return TokenizedData(datasets["train"], datasets.get("validation"), stats)
    stats: dict[str, int] = {"bad_records_skipped": split.skipped}
    datasets = {
        name: tokenize_records(name, records, profile, system_prompt, tokenizer, max_length, stats)
        for name, records in (("train", split.train), ("validation", split.validation))
        if records
    }
    if cache_dir is not None:
        save_cached(cache_dir / key, datasets, stats)
    return TokenizedData(datasets["train"], datasets.get("validation"), stats)


def tokenize_records(
    name: str,
    records: list[tuple[int, Record]],
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    stats: dict[str, int],
) -> Dataset:
    columns: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    truncated = dropped = 0
    for index, record in tqdm(records, desc=f"Tokenizing the {name} set", unit="example", disable=None):
        example = profile.transform_example(record.example, index, system_prompt)
        try:
            tokenized = tokenize_with_assistant_mask(tokenizer, example["messages"], max_length)
        except TemplateError as error:
            raise TemplateError(f"{record.location} (example {index}): {error}") from None
        truncated += tokenized.truncated
        if not tokenized.has_assistant_tokens:
            dropped += 1
            continue
        columns["input_ids"].append(tokenized.input_ids)
        columns["attention_mask"].append([1] * len(tokenized.input_ids))
        columns["labels"].append(tokenized.labels)
    if not columns["input_ids"]:
        raise DataError([f"{name} set: no example keeps an assistant token within data.max_length={max_length}"])
    stats |= {
        f"{name}_examples": len(columns["input_ids"]),
        f"{name}_truncated": truncated,
        f"{name}_dropped": dropped,
        f"{name}_tokens": sum(map(len, columns["input_ids"])),
    }
    log.info(
        "%s set: %d examples, %d tokens, %d truncated to %d tokens, %d dropped (no assistant token left)",
        name,
        stats[f"{name}_examples"],
        stats[f"{name}_tokens"],
        truncated,
        max_length,
        dropped,
    )
    return Dataset.from_dict(columns)
