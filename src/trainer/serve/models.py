"""The models a server answers with: the one it was started with, plus local model directories
named in requests (checkpoints of a run in progress), kept in a small least-recently-used cache."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer.config import ModelConfig
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.preview.remote import DEFAULT_MODEL_NAME

log = logging.getLogger(__name__)

LoadedModel = tuple[PreTrainedModel, PreTrainedTokenizerBase]


class UnknownModelError(LookupError):
    pass


class ModelCache:
    def __init__(self, default_path: str, served_name: str, capacity: int, dtype: torch.dtype, device: str) -> None:
        self.default_path = default_path
        self.served_name = served_name
        self.capacity = capacity
        self.dtype = dtype
        self.device = device
        self.loaded: OrderedDict[str, LoadedModel] = OrderedDict()

    def resolve(self, name: str | None) -> str:
        """The directory to load for the model `name` of a request."""
        if not name or name in (DEFAULT_MODEL_NAME, self.served_name):
            return self.default_path
        if Path(name).is_dir():
            return str(Path(name).resolve())
        raise UnknownModelError(
            f"model {name!r} is neither this server's model ({self.served_name!r}) nor a local model directory"
        )

    def get(self, name: str | None) -> LoadedModel:
        path = self.resolve(name)
        if path in self.loaded:
            self.loaded.move_to_end(path)
            return self.loaded[path]
        model, tokenizer, _ = load_model_and_tokenizer(
            ModelConfig(name=Path(path).name, source="pretrained", path=path), self.dtype
        )
        self.loaded[path] = (model.to(self.device).eval(), tokenizer)
        if len(self.loaded) > self.capacity:
            evicted, _ = self.loaded.popitem(last=False)
            log.info("Evicted %s from the model cache (capacity %d)", evicted, self.capacity)
        return self.loaded[path]

    def names(self) -> list[str]:
        """The served model's name, then every other model loaded now."""
        others = [path for path in self.loaded if path != self.default_path]
        return [self.served_name, *others]
