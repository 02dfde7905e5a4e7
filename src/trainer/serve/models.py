"""The models a server answers with: the one it was started with, plus model directories under
the directories it was told to allow (`--allow-dir`: the checkpoints of runs in progress), kept
in a small least-recently-used cache. Nothing else is ever loaded, whatever a request names."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer.config.schema import DEFAULT_MODEL_NAME, ModelConfig
from trainer.errors import UserError
from trainer.modeling.loading import load_model_and_tokenizer

log = logging.getLogger(__name__)

LoadedModel = tuple[PreTrainedModel, PreTrainedTokenizerBase]


class ModelNotServedError(LookupError):
    """The request names a model this server does not serve. Deliberately the same message
    whether the path exists or not, so a client cannot probe the filesystem."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"The model {name[:200]!r} does not exist or is not served here "
            "(a checkpoint is served only from under a directory the server allows with --allow-dir)"
        )


class ModelCache:
    def __init__(
        self,
        default_path: str,
        served_name: str,
        allowed_dirs: list[Path],
        capacity: int,
        dtype: torch.dtype,
        device: str,
    ) -> None:
        self.default_path = str(Path(default_path).resolve())
        self.served_name = served_name
        self.allowed_dirs = [directory.resolve() for directory in allowed_dirs]
        self.capacity = capacity
        self.dtype = dtype
        self.device = device
        self.loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        # /v1/models reads the cache while a generation thread may be loading into it.
        self.lock = threading.Lock()

    def resolve(self, name: str | None) -> str:
        """The directory to load for the model `name` of a request: the served model, or a
        directory that, symlinks and `..` resolved, lies under an allowed directory."""
        if not name or name in (DEFAULT_MODEL_NAME, self.served_name):
            return self.default_path
        try:
            path = Path(name).resolve()
        except (OSError, ValueError, RuntimeError) as error:  # too long, NUL bytes, symlink loops
            raise ModelNotServedError(name) from error
        allowed = str(path) == self.default_path or any(path.is_relative_to(root) for root in self.allowed_dirs)
        if not allowed or not path.is_dir():
            raise ModelNotServedError(name)
        return str(path)

    def get(self, name: str | None) -> LoadedModel:
        path = self.resolve(name)
        try:
            return self.load(path)
        except (UserError, OSError, ValueError) as error:
            log.warning("Could not load the allowed directory %s as a model: %s", path, error)
            raise ModelNotServedError(name or path) from error

    def load(self, path: str) -> LoadedModel:
        """The model in directory `path`, from the cache or loaded into it."""
        with self.lock:
            if path in self.loaded:
                self.loaded.move_to_end(path)
                return self.loaded[path]
        model, tokenizer, _ = load_model_and_tokenizer(
            ModelConfig(name=Path(path).name, source="pretrained", path=path), self.dtype
        )
        with self.lock:
            self.loaded[path] = (model.to(self.device).eval(), tokenizer)
            if len(self.loaded) > self.capacity:
                evicted, _ = self.loaded.popitem(last=False)
                log.info("Evicted %s from the model cache (capacity %d)", evicted, self.capacity)
            return self.loaded[path]

    def names(self) -> list[str]:
        """The served model's name, then every other model loaded now (all of them allowed)."""
        with self.lock:
            others = [path for path in self.loaded if path != self.default_path]
        return [self.served_name, *others]
