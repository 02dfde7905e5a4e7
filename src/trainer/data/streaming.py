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

A mixture streams each source so, and takes the next example from the source furthest below its
weight's share of the assistant tokens handed out so far: after any number of examples each
source's share is within one example of its weight's, with no randomness beyond each source's own
shuffle. Its position is each source's, with the assistant tokens it has given. A dataset
repository or Hub id is streamed by `load_dataset(..., streaming=True)`.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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
from trainer.config.sources import DataSource, source_name
from trainer.data.cache_entry import TokenizedData
from trainer.data.checking import BadRecords
from trainer.data.encoding import BATCH_SIZE, ROW_COUNTS, TOKENIZED_FEATURES, tokenize_batch, usable_rows
from trainer.data.loading import Record
from trainer.data.mixture import SOURCE_COUNTS
from trainer.data.records import record_columns
from trainer.data.sources import configured_sources, stream_name, streamed_records
from trainer.data.split import StreamSplit
from trainer.data.tokenization import IGNORE_INDEX
from trainer.errors import DataError, UserError
from trainer.profiles.base import Profile

log = logging.getLogger(__name__)

# Positions of the examples handed out lately, kept to find the one a checkpoint's step ended
# on; the loader runs at most a batch or two ahead of the optimizer.
HISTORY = 1 << 14
# Examples the reading thread prepares ahead of training: two tokenizer batches.
PREFETCH = 2 * BATCH_SIZE
# The stream's counts: the records it has read, and the `ROW_COUNTS` of the eager path's sets.
STREAM_STATS = ("stream_records_read", *(f"stream_{count}" for count in ROW_COUNTS))
Pair = tuple[int, Record]
Tokenize = Callable[[list[Pair]], dict[str, list]]


@dataclass(frozen=True)
class Position:
    pass_number: int
    # Records drawn from this pass's buffer so far, bad and dropped ones included.
    draws: int

    def saved(self) -> dict[str, Any]:
        return vars(self)


@dataclass(frozen=True)
class MixturePosition:
    # Each source's position in its own stream...
    positions: tuple[Position, ...]
    # ...and the assistant tokens it has given: they decide which source gives the next example.
    learned: tuple[int, ...]

    def saved(self) -> dict[str, Any]:
        parts = zip(self.positions, self.learned, strict=True)
        return {"sources": [{**vars(position), "learned": learned} for position, learned in parts]}

    @classmethod
    def from_saved(cls, sources: list[dict[str, int]]) -> MixturePosition:
        positions = tuple(Position(source["pass_number"], source["draws"]) for source in sources)
        return cls(positions, tuple(source["learned"] for source in sources))


class PositionedStream(IterableDataset):
    """Examples handed out endlessly, each remembered with the stream position after it, so that
    a checkpoint's step finds where the stream stood, and a resumed stream starts there. One
    reader: a DataLoader over it must run in the training process (no workers)."""

    start: Any
    examples_before_start: int

    def restore(self, position: Any, examples: int) -> None:
        """Start (the next iteration) at `position`, reached after `examples` examples."""
        self.start, self.examples_before_start = position, examples
        self.history: deque[tuple[int, Any]] = deque([(examples, position)], maxlen=HISTORY)

    def position_after(self, examples: int) -> Any:
        """Where the stream stood once it had handed out `examples` examples."""
        for handed_out, position in reversed(self.history):
            if handed_out == examples:
                return position
        raise LookupError(f"the stream no longer knows where its example {examples} came from")

    def __iter__(self) -> Iterator[dict[str, list[int]]]:
        handed_out = self.examples_before_start
        # A thread reads and tokenizes ahead while the model trains; the order is its alone.
        for position, example in in_background(self.positioned_examples(self.start), PREFETCH):
            handed_out += 1
            self.history.append((handed_out, position))
            yield example

    def positioned_examples(self, start: Any) -> Iterator[tuple[Any, dict[str, list[int]]]]:
        """Every example from `start` on, with the stream position after it."""
        raise NotImplementedError

    def restored_position(self, saved: dict[str, Any]) -> Any:
        """The position a checkpoint saved (`saved()` of it)."""
        raise NotImplementedError


class ChatStream(PositionedStream):
    """The training examples of one source, endlessly, as dicts of input_ids, attention_mask and labels."""

    def __init__(
        self,
        source: DataSource,
        tokenize: Tokenize,
        profile: Profile,
        on_bad_record: str,
        shuffle_buffer: int,
        seed: int | str,
        first_index: int = 0,
        skipped: int = 0,
    ) -> None:
        self.source, self.name, self.tokenize, self.profile = source, stream_name(source), tokenize, profile
        self.shuffle_buffer, self.seed, self.first_index = shuffle_buffer, seed, first_index
        # What the run reports of its data, counted as the stream goes (a resumed run: since it resumed).
        self.stats = dict.fromkeys(STREAM_STATS, 0)
        self.bad_records = BadRecords(on_bad_record, self.stats, stop_at_first=True)
        self.stats["bad_records_skipped"] = skipped
        self.restore(Position(0, 0), examples=0)

    def restored_position(self, saved: dict[str, int]) -> Position:
        return Position(**saved)

    def positioned_examples(self, start: Position) -> Iterator[tuple[Position, dict[str, list[int]]]]:
        """Every example from `start` on, with the position after the draw that made it."""
        position = start
        if position.draws or position.pass_number:
            log.info(
                "Stream resumes at pass %d, draw %d of %s: re-reading (not tokenizing) the records drawn before",
                position.pass_number + 1,
                position.draws,
                self.name,
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
                    [f"{self.name}: no training record (after {self.first_index} held out) keeps an assistant token"]
                )
            log.info("Pass %d over %s done: %s", position.pass_number + 1, self.name, self.stats)
            position = Position(position.pass_number + 1, 0)

    def draws(self, pass_number: int) -> Iterator[Pair]:
        """The training records of one pass, in the order this pass's seeded buffer draws them."""
        rng = random.Random(f"{self.seed}-{pass_number}")
        buffer: list[Pair] = []
        for index, record in enumerate(streamed_records(self.source)):
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


class MixtureStream(PositionedStream):
    """A weighted mixture of `ChatStream`s: the next example comes from the source furthest below
    its weight's share of the assistant tokens handed out so far."""

    def __init__(self, streams: list[ChatStream], weights: list[float], skipped: int = 0) -> None:
        self.streams, self.weights, self.held_out_skipped = streams, weights, skipped
        accounts = [
            {"name": stream.source.name, "weight": weight, **dict.fromkeys(SOURCE_COUNTS, 0)}
            for stream, weight in zip(streams, weights, strict=True)
        ]
        # The streams' counts summed, and what each source gave to the mixture (`sources`).
        self.stats: dict[str, Any] = {**dict.fromkeys(STREAM_STATS, 0), "bad_records_skipped": skipped}
        self.stats["sources"] = accounts
        self.restore(MixturePosition((Position(0, 0),) * len(streams), (0,) * len(streams)), examples=0)

    def restored_position(self, saved: dict[str, Any]) -> MixturePosition:
        return MixturePosition.from_saved(saved["sources"])

    def positioned_examples(self, start: MixturePosition) -> Iterator[tuple[MixturePosition, dict[str, list[int]]]]:
        sources = [
            stream.positioned_examples(position) for stream, position in zip(self.streams, start.positions, strict=True)
        ]
        positions, learned = list(start.positions), list(start.learned)
        while True:
            # Ties go to the source listed first: the order is a function of the sources alone.
            chosen = min(range(len(sources)), key=lambda at: (learned[at] / self.weights[at], at))
            positions[chosen], example = next(sources[chosen])
            assistant_tokens = sum(label != IGNORE_INDEX for label in example["labels"])
            learned[chosen] += assistant_tokens
            self.count(chosen, example, assistant_tokens)
            yield MixturePosition(tuple(positions), tuple(learned)), example

    def count(self, chosen: int, example: dict[str, list[int]], assistant_tokens: int) -> None:
        account, stats = self.stats["sources"][chosen], self.streams[chosen].stats
        account["examples"] += 1
        account["tokens"] += len(example["input_ids"])
        account["assistant_tokens"] += assistant_tokens
        account |= {"truncated": stats["stream_truncated"], "dropped": stats["stream_dropped"]}
        account["skipped"] = stats["bad_records_skipped"]
        for key in STREAM_STATS:
            self.stats[key] = sum(stream.stats[key] for stream in self.streams)
        skipped = sum(stream.stats["bad_records_skipped"] for stream in self.streams)
        self.stats["bad_records_skipped"] = self.held_out_skipped + skipped


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
    """The validation set tokenized now (in memory), the training set as a `ChatStream` (a
    `MixtureStream` of them for a mixture)."""
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
    sources = configured_sources(config.train, "data.train")
    streams = [
        ChatStream(
            source,
            tokenize,
            profile,
            config.on_bad_record,
            config.shuffle_buffer,
            # Each source of a mixture shuffles with a seed of its own.
            seed if len(sources) == 1 else f"{seed}/{position}",
            first_index,
            split.skipped if len(sources) == 1 else 0,
        )
        for position, (source, first_index) in enumerate(zip(sources, split.first_indices, strict=True))
    ]
    stream = (
        streams[0]
        if len(streams) == 1
        else MixtureStream(streams, [source.weight for source in sources], split.skipped)
    )
    log.info(
        "Streaming %s: records are read, checked and tokenized as training needs them (shuffle buffer %d); "
        "%d validation examples",
        streams[0].name if len(streams) == 1 else source_name(config.train, "data.train"),
        config.shuffle_buffer,
        len(validation) if validation is not None else 0,
    )
    return TokenizedData(stream, validation, stream.stats)


class StreamPosition(TrainerCallback, ExportableState):
    """Keeps the stream position after the last example the optimizer has trained on; the
    Trainer saves it in each checkpoint's trainer_state.json (`stateful_callbacks`)."""

    def __init__(self, stream: PositionedStream) -> None:
        self.stream = stream
        self.position = stream.start
        self.examples = stream.examples_before_start

    def on_step_end(self, args, state, control, **kwargs):
        # Every step takes the same number of examples: the stream never ends an epoch early.
        self.examples = state.global_step * args.train_batch_size * args.gradient_accumulation_steps
        self.position = self.stream.position_after(self.examples)

    def state(self) -> dict:
        return {"args": {}, "attributes": {"examples": self.examples, **self.position.saved()}}


def stream_position(stream: PositionedStream, checkpoint: str | None, processes: int) -> StreamPosition:
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
        stream.restore(stream.restored_position(attributes), examples)
    return StreamPosition(stream)
