"""`data.streaming=true`: training records read, checked and tokenized while the model trains,
for data larger than the memory or disk budget; the first step comes after a buffer's worth of
records, whatever the size of the file.

The stream is endless: passes over the file follow one another, each drawn at random from a
buffer of `data.shuffle_buffer` records, seeded per pass. Records are checked and tokenized by the
eager path's own functions, a batch of draws at a time, so each example is the one eager
preparation makes. A position in the stream is (pass, draws): a pass is a pure function of the
seed, so a resumed stream replays a position's draws without checking or tokenizing them and goes
on from the next. `StreamPosition` saves the position after the last example the optimizer trained
on in every checkpoint's trainer_state.json (written with the checkpoint, so never half of it).
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from queue import Full, Queue
from typing import Any

from datasets import Dataset
from torch.utils.data import IterableDataset
from transformers import PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import ExportableState

from trainer.config.schema import DataConfig
from trainer.config.sources import data_source
from trainer.data.loading import Record, iter_records, resolve_data_path
from trainer.data.preparation import (
    BATCH_SIZE,
    TOKENIZED_FEATURES,
    RecordSplit,
    TokenizedData,
    checked_example,
    checked_table,
    record_problem,
    tokenize_batch,
    usable_rows,
)
from trainer.data.records import RecordTableWriter, record_columns
from trainer.data.sources import configured_source
from trainer.errors import DataError, UserError
from trainer.profiles.base import Profile

log = logging.getLogger(__name__)

# Positions of the examples handed out lately, kept to find the one a checkpoint's step ended
# on; the loader runs at most a batch or two ahead of the optimizer.
HISTORY = 1 << 14
# Examples the reading thread prepares ahead of training: two tokenizer batches.
PREFETCH = 2 * BATCH_SIZE
STREAM_STATS = ("stream_records_read", "stream_examples", "stream_tokens", "stream_truncated", "stream_dropped")
Pair = tuple[int, Record]
Tokenize = Callable[[list[Pair]], dict[str, list]]


@dataclass(frozen=True)
class Position:
    pass_number: int
    # Records drawn from this pass's buffer so far, bad and dropped ones included.
    draws: int


@dataclass
class StreamSplit(RecordSplit):
    # Records of the training file before this index were held out for validation.
    first_index: int = 0


def held_out_split(config: DataConfig, profile: Profile, seed: int) -> StreamSplit:
    """The validation records, read before any model loads: `data.validation`, or the first
    `data.validation_max_samples` valid records of the training file (a split by share needs the
    file's length). The training records stay in the file, read by the stream."""
    if config.validation is not None:
        validation, skipped = checked_table(
            configured_source(config.validation, "data.validation"), profile, config.on_bad_record
        )
        return StreamSplit(RecordTableWriter().close(), validation, skipped)
    source, wanted = resolve_data_path(data_source(config.train, "data.train").path), config.validation_max_samples
    writer, held_out, first_index = RecordTableWriter(), 0, 0
    bad_records = BadRecords(config.on_bad_record, {})
    for index, record in enumerate(iter_records(source)) if wanted else ():
        if (checked := bad_records.checked(index, record, profile)) is not None:
            writer.add(index, checked)
            held_out += 1
        if held_out == wanted:
            first_index = index + 1
            break
    if held_out < wanted:
        raise DataError([f"{source}: too few valid records ({held_out}) to hold out {wanted} for validation"])
    return StreamSplit(RecordTableWriter().close(), writer.close(), bad_records.skipped, first_index)


class BadRecords:
    """Bad records met while streaming, reported as the eager path reports them: the first one
    stops the run under data.on_bad_record=error (a stream cannot list them all up front), and
    under skip they are left out, the first one logged, each counted once however many passes
    (and read-ahead) meet it."""

    def __init__(self, on_bad_record: str, stats: dict[str, int]) -> None:
        self.on_bad_record = on_bad_record
        # Counted into the stats the run reports.
        self.stats = stats
        self.stats.setdefault("bad_records_skipped", 0)
        self.seen: set[int] = set()

    @property
    def skipped(self) -> int:
        return self.stats["bad_records_skipped"]

    def checked(self, index: int, record: Record, profile: Profile) -> Record | None:
        example, found = checked_example(record, profile)
        if not found:
            return replace(record, example=example)
        problem = record_problem(record, index, found)
        if self.on_bad_record == "error":
            raise DataError([problem])
        if not self.skipped:
            log.warning(
                "Skipping bad records (data.on_bad_record=skip), counted in bad_records_skipped; e.g. %s", problem
            )
        if index not in self.seen:
            self.seen.add(index)
            self.stats["bad_records_skipped"] += 1
        return None


class ChatStream(IterableDataset):
    """The training examples of `source`, endlessly, as dicts of input_ids, attention_mask and
    labels. One reader: a DataLoader over it must run in the training process (no workers)."""

    def __init__(
        self,
        source: Path,
        tokenize: Tokenize,
        profile: Profile,
        on_bad_record: str,
        shuffle_buffer: int,
        seed: int,
        first_index: int = 0,
        skipped: int = 0,
    ) -> None:
        self.source, self.tokenize, self.profile = source, tokenize, profile
        self.shuffle_buffer, self.seed, self.first_index = shuffle_buffer, seed, first_index
        # What the run reports of its data, counted as the stream goes (a resumed run: since it resumed).
        self.stats = dict.fromkeys(STREAM_STATS, 0)
        self.bad_records = BadRecords(on_bad_record, self.stats)
        self.stats["bad_records_skipped"] = skipped
        self.restore(Position(0, 0), examples=0)

    def restore(self, position: Position, examples: int) -> None:
        """Start (the next iteration) at `position`, reached after `examples` examples."""
        self.start, self.examples_before_start = position, examples
        self.history: deque[tuple[int, Position]] = deque([(examples, position)], maxlen=HISTORY)

    def position_after(self, examples: int) -> Position:
        """Where the stream stood once it had handed out `examples` examples."""
        for handed_out, position in reversed(self.history):
            if handed_out == examples:
                return position
        raise LookupError(f"the stream no longer knows where its example {examples} came from")

    def __iter__(self) -> Iterator[dict[str, list[int]]]:
        handed_out = self.examples_before_start
        # A thread reads and tokenizes ahead while the model trains; the order is its alone.
        for position, example in in_background(self.positioned_examples(), PREFETCH):
            handed_out += 1
            self.history.append((handed_out, position))
            yield example

    def positioned_examples(self) -> Iterator[tuple[Position, dict[str, list[int]]]]:
        """Every example from `start` on, with the position after the draw that made it."""
        position = self.start
        if position.draws or position.pass_number:
            log.info(
                "Stream resumes at pass %d, draw %d: re-reading (not tokenizing) the records drawn before",
                position.pass_number + 1,
                position.draws,
            )
        while True:
            draws = enumerate(self.draws(position.pass_number))
            examples = 0
            for chunk in chunked(islice(draws, position.draws, None), BATCH_SIZE):
                for draw, example in self.examples(chunk):
                    examples += 1
                    yield Position(position.pass_number, draw + 1), example
            if not examples and not position.draws:
                raise DataError(
                    [f"{self.source}: no training record (after {self.first_index} held out) keeps an assistant token"]
                )
            log.info("Pass %d over %s done: %s", position.pass_number + 1, self.source, self.stats)
            position = Position(position.pass_number + 1, 0)

    def draws(self, pass_number: int) -> Iterator[Pair]:
        """The training records of one pass, in the order this pass's seeded buffer draws them."""
        rng = random.Random(f"{self.seed}-{pass_number}")
        buffer: list[Pair] = []
        for index, record in enumerate(iter_records(self.source)):
            self.stats["stream_records_read"] += 1
            if index < self.first_index:
                continue
            if len(buffer) < self.shuffle_buffer:
                buffer.append((index, record))
                continue
            slot = rng.randrange(len(buffer))
            yield buffer[slot]
            buffer[slot] = (index, record)
        rng.shuffle(buffer)
        yield from buffer

    def examples(self, chunk: list[tuple[int, Pair]]) -> Iterator[tuple[int, dict[str, list[int]]]]:
        """(draw, example) for the records of `chunk` that are valid and keep an assistant token."""
        valid = [
            (draw, (index, checked))
            for draw, (index, record) in chunk
            if (checked := self.bad_records.checked(index, record, self.profile)) is not None
        ]
        if not valid:
            return
        columns = self.tokenize([pair for _, pair in valid])
        rows = zip(valid, columns["input_ids"], columns["labels"], columns["truncated"], columns["kept"], strict=True)
        for (draw, _), input_ids, labels, truncated, kept in rows:
            self.stats["stream_truncated"] += truncated
            if not kept:
                self.stats["stream_dropped"] += 1
                continue
            self.stats["stream_examples"] += 1
            self.stats["stream_tokens"] += len(input_ids)
            ids = list(map(int, input_ids))
            yield draw, {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(map(int, labels))}


def in_background(items: Iterator[Any], ahead: int) -> Iterator[Any]:
    """`items`, produced by a daemon thread up to `ahead` items before they are asked for; its
    exception is raised here. The thread ends soon after this generator is closed."""
    queue: Queue = Queue(maxsize=ahead)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
            hand_over((None, StopIteration()))
        except BaseException as error:  # re-raised in the consumer, which reports it
            hand_over((None, error))

    threading.Thread(target=produce, name="trainer-stream", daemon=True).start()
    try:
        while True:
            item, error = queue.get()
            if isinstance(error, StopIteration):
                return
            if error is not None:
                raise error
            yield item
    finally:
        stop.set()


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def tokenizing(profile: Profile, system_prompt: str, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Tokenize:
    """(index, record) pairs tokenized as eager preparation tokenizes a batch of its table."""

    def tokenize(pairs: list[Pair]) -> dict[str, list]:
        return tokenize_batch(record_columns(pairs), profile, system_prompt, tokenizer, max_length)

    return tokenize


def stream_split(
    split: StreamSplit,
    config: DataConfig,
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
) -> TokenizedData:
    """The validation set tokenized now (in memory), the training set as a `ChatStream`."""
    validation = None
    if split.validation:
        tokenize = tokenizing(profile, system_prompt, tokenizer, config.max_length)
        columns: dict[str, list] = {name: [] for name in TOKENIZED_FEATURES}
        for pairs in chunked(split.validation, BATCH_SIZE):
            for name, values in tokenize(pairs).items():
                columns[name].extend(values)
        validation = usable_rows(Dataset.from_dict(columns, features=TOKENIZED_FEATURES))
    # The stream's thread has a tokenizer of its own: a fast tokenizer that two threads use at
    # once may refuse ("Already borrowed"), and previews use the run's while training.
    tokenize = tokenizing(profile, system_prompt, copy.deepcopy(tokenizer), config.max_length)
    source = resolve_data_path(data_source(config.train, "data.train").path)
    stream = ChatStream(
        source, tokenize, profile, config.on_bad_record, config.shuffle_buffer, seed, split.first_index, split.skipped
    )
    log.info(
        "Streaming %s: records are read, checked and tokenized as training needs them (shuffle buffer %d); "
        "%d validation examples",
        source,
        config.shuffle_buffer,
        len(validation) if validation is not None else 0,
    )
    return TokenizedData(stream, validation, stream.stats)


class StreamPosition(TrainerCallback, ExportableState):
    """Keeps the stream position after the last example the optimizer has trained on; the
    Trainer saves it in each checkpoint's trainer_state.json (`stateful_callbacks`)."""

    def __init__(self, stream: ChatStream) -> None:
        self.stream = stream
        self.position = stream.start
        self.examples = stream.examples_before_start

    def on_step_end(self, args, state, control, **kwargs):
        # Every step takes the same number of examples: the stream never ends an epoch early.
        self.examples = state.global_step * args.train_batch_size * args.gradient_accumulation_steps
        self.position = self.stream.position_after(self.examples)

    def state(self) -> dict:
        return {"args": {}, "attributes": {"examples": self.examples, **vars(self.position)}}


def stream_position(stream: ChatStream, checkpoint: str | None, processes: int) -> StreamPosition:
    """The callback that saves the stream's position with each checkpoint, with the stream started
    where `checkpoint` left it."""
    if processes > 1:
        raise UserError(
            f"data.streaming=true trains in one process: the stream is not sharded across the {processes} "
            "processes of this launch; launch one process, or set data.streaming=false"
        )
    if checkpoint:
        saved = json.loads((Path(checkpoint) / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
        attributes = saved["stateful_callbacks"].get(StreamPosition.__name__, {}).get("attributes")
        if attributes is None:
            raise UserError(
                f"Cannot resume the stream: {checkpoint} holds no stream position (saved without streaming)"
            )
        examples = attributes.pop("examples")
        stream.restore(Position(**attributes), examples)
    return StreamPosition(stream)
