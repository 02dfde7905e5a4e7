"""The typed configuration of a run: one `TrainerConfig`, sections by concern.

Every knob is documented here, once, beside its default; conf/ sets values and README shows uses.
"HF default" marks a default that differs from the one of the library option it is handed to
(transformers' `TrainingArguments`, PEFT's `LoraConfig`, accelerate's FSDP plugin).

Hydra composes `conf/train.yaml` over this schema (registered by `trainer.config.load`), so
unknown keys and wrong types are rejected at compose time. Semantic checks live in
`trainer.config.validate`.
This module imports no torch or transformers: `--help` and `--cfg job` stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any

from omegaconf import MISSING

SCHEMA_NAME = "trainer_schema"

# The values each choice knob accepts (checked by trainer.config.validate). Choices that follow an
# installed library (optimizers, schedulers, attention kernels) or a registry of classes (profiles,
# tiny architectures) are not listed here: they reach validation as `Facts`.
MODEL_SOURCES = ("tiny", "pretrained")
CHAT_TEMPLATE_MODES = ("auto", "chatml", "tokenizer")
BAD_RECORD_POLICIES = ("error", "skip")
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet")
# Single-file compressions of JSON Lines and JSON, as datasets reads them (.zst and .lz4 need the
# zstandard and lz4 packages): e.g. data.jsonl.gz.
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4")
SUPPORTED_FORMATS = (
    f"{', '.join(SUPPORTED_SUFFIXES)} (JSON ones also compressed: {', '.join(COMPRESSION_SUFFIXES)}), "
    "a directory written by datasets' save_to_disk, or a dataset repository (README.md with configs:)"
)


def format_suffix(name: str) -> str:
    """The suffix that names a data file's format, behind its compression's: .jsonl for x.jsonl.gz
    (JSON only: a compressed Parquet file keeps its compression's suffix, which no reader takes)."""
    suffixes = PurePath(name).suffixes[-2:]
    compressed = len(suffixes) == 2 and suffixes[1] in COMPRESSION_SUFFIXES and suffixes[0] in (".jsonl", ".json")
    return suffixes[0] if compressed else PurePath(name).suffix


PRECISIONS = ("fp32", "bf16", "fp16")
PREVIEW_BACKENDS = ("none", "local", "remote")
REMOTE_PROTOCOLS = ("openai", "generate")
PEFT_METHODS = ("none", "lora", "qlora")
# What a run learns from: chats (sft) or preference pairs (the others; trainer.data.preference).
OBJECTIVES = ("sft", "dpo", "simpo")
PREFERENCE_OBJECTIVES = ("dpo", "simpo")
# DPO's loss of the reward margin, under TRL's names (DPOConfig.loss_type).
PREFERENCE_LOSSES = ("sigmoid", "ipo", "hinge")
# TRL's names of the preference metrics: logged, charted, in status.json, result.json and the sweep summary.
PREFERENCE_METRICS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
)
FUSED_LOSSES = ("none", "liger", "cce")
LOG_LEVELS = ("debug", "info", "warning", "error")
SWEEP_METRICS = ("eval_loss", "final_loss", "tokens_per_sec")
SWEEP_MODES = ("min", "max")
# The name of a generation eval metric wherever it is logged or named: `eval/<profile metric>`.
EVAL_METRIC_PREFIX = "eval/"
FINAL_MODEL_CHOICES = ("last", "best")
STRATEGIES = ("ddp", "fsdp")
DISTRIBUTED_BACKENDS = ("nccl", "gloo")
STATE_DICT_TYPES = ("FULL_STATE_DICT", "SHARDED_STATE_DICT")
WANDB_MODES = ("auto", "online", "offline")
# The fewest logged losses a trend or a noise figure is computed from (monitoring.loss_window's floor).
MIN_TREND_POINTS = 3


@dataclass
class TinyModelConfig:
    """Shape of the locally built model (of family `model.architecture`) used when `model.source=tiny`;
    the fields are the model config's own (transformers' `Qwen3Config`/`LlamaConfig`)."""

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 1024
    # The byte-level BPE tokenizer, trained on the sample data, gets this many tokens.
    vocab_size: int = 512
    # The weights' seed, independent of the training seed.
    init_seed: int = 0


@dataclass
class ModelConfig:
    # The model's label in HParams, the sweep summary and the logs (a conf/model option's name).
    name: str = "tiny"
    # The model family (qwen3 | llama | ...): builds the tiny model and picks LoRA's default target modules.
    architecture: str = "qwen3"
    # "tiny": built from `tiny` and cached; "pretrained": loaded with from_pretrained(path).
    source: str = "tiny"
    # pretrained: a hub id (downloads once, online only) or a local directory holding config.json,
    # the tokenizer and *.safetensors (offline).
    path: str | None = None
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    # Run Python code shipped with the model's repository; never needed for native families.
    trust_remote_code: bool = False
    # sdpa: fused attention in torch; flash_attention_2 needs the flash-attn package.
    # HF default: None (sdpa where the model supports it, else eager).
    attn_implementation: str = "sdpa"
    # Where built tiny models are cached (keyed by their shape); "~" is expanded.
    cache_dir: str = "~/.cache/trainer"
    # auto: the tokenizer's own template unless it has none, injects <think> blocks or cannot be
    # masked, then ChatML; chatml: always ChatML; tokenizer: always the tokenizer's own.
    chat_template: str = "auto"
    # The sequence length this model trains at by default (data.max_length follows it); activation
    # memory grows with it.
    max_length: int = 512


@dataclass
class DataConfig:
    # Where the records come from (trainer.config.sources): a file (SUPPORTED_FORMATS), a directory
    # (save_to_disk, or laid out like a Hub dataset repository) or a Hub dataset id; or an object
    # {path, subset, split, revision}. None means the sample chat data shipped inside the package.
    train: Any = None
    # A source like `train` (its split defaults to "validation"); None: a seeded split held out
    # of `train` (the two knobs below).
    validation: Any = None
    # Without `validation`: the share of `train` held out for the eval loss...
    validation_split: float = 0.1
    # ...but at most this many examples (evaluation time stays flat as the data grows).
    validation_max_samples: int = 64
    # Tokens per example; longer ones are truncated. None: model.max_length (resolved when the
    # TrainerConfig is built; conf/train.yaml says the same with an interpolation).
    max_length: int | None = None
    # None means the profile's system prompt template; "{date}" is filled with run.date.
    system_prompt: str | None = None
    # "error": any bad record stops the run, all of them listed; "skip": leave them out, counted.
    on_bad_record: str = "error"
    # Padding-free batches: examples laid end to end, attention kept within each example; faster
    # with mixed lengths and less memory, same loss. None: packed where that is exact for the model
    # (resolved once it is loaded; padded for sliding-window, non-full-attention or softcapped
    # attention under SDPA per example, with the reason logged); true/false force it.
    packing: bool | None = None
    # A resume refuses data whose content changed since the run started; true continues on it
    # (logged, and recorded in the run's data.json).
    allow_changed: bool = False
    # With packing, > 0: every batch holds whole examples up to this many tokens, padded to it
    # (static shapes: one torch.compile, flat memory); per_device_train_batch_size is then unused.
    tokens_per_batch: int = 0
    # Tokenized data is kept in one content-addressed cache shared by runs and sweep jobs; false
    # keeps it in the run directory only (read back on resume, never shared).
    cache: bool = True
    # None means $XDG_CACHE_HOME/trainer/tokenized (~/.cache/trainer/tokenized).
    cache_dir: str | None = None
    # Processes that tokenize; None means the CPU cores this process may use.
    num_proc: int | None = None
    # Read, check and tokenize records while training (for data beyond memory or disk budget):
    # the first step comes within seconds; needs train.max_steps > 0, one process, no token budget.
    # Without data.validation, the first validation_max_samples records are held out for it (shared
    # out among a mixture's sources, which stream by weight: each source's share of the assistant tokens).
    streaming: bool = False
    # Streaming: records drawn at random from a buffer of this many (seeded per pass); 1: file order.
    shuffle_buffer: int = 10000


@dataclass
class ProfileConfig:
    # The data contract applied to every chat example: one of conf/profile/ (trainer.profiles).
    name: str = "plain"
    # Share of examples that get the emoji contract (emoji_think only); which ones is fixed by
    # (seed, index). Below 1.0 the model also sees plain answers, at the cost of a weaker habit.
    emoji_ratio: float = 1.0


@dataclass
class PrecisionConfig:
    # fp32 | bf16 | fp16: drives the model dtype and the mixed-precision training flags together
    # (TrainingArguments' bf16/fp16; fp16 needs CUDA). HF default: fp32 too.
    name: str = "fp32"


# The model name that asks trainer.serve for the model it was started with.
DEFAULT_MODEL_NAME = "default"


@dataclass
class RemotePreviewConfig:
    # The inference server's base URL, without /v1 (trainer.serve, vLLM, llama.cpp server, TGI, ...).
    url: str = "http://127.0.0.1:8765"
    # "openai": POST /v1/chat/completions; "generate": POST /generate (prompt text in, text out).
    protocol: str = "openai"
    # The model name sent while no checkpoint exists (or always, with send_checkpoint=false), e.g.
    # vLLM's served name; None asks trainer.serve for the model it was started with.
    model: str | None = None
    # Send the newest checkpoint directory (absolute) as the model, for a server that shares the
    # filesystem; trainer.serve serves it only when started with --allow-dir over the runs' directory.
    send_checkpoint: bool = True
    # Per request; also the longest the end of training waits for the server, all rounds together.
    timeout_sec: float = 30.0
    # More retries ride out server restarts, but a dead server costs more at the end of training.
    retries: int = 1
    # The NAME of an environment variable holding a bearer token; the token itself is never
    # part of the config, the logs or the run directory (a token given here is refused).
    token_env: str | None = None


@dataclass
class PreviewConfig:
    # none | local: generated on the training thread, with the profile's logits processors |
    # remote: asked of an HTTP server off the training thread (a slow server never stalls a step).
    backend: str = "none"
    # Steps between previews, plus one at the end; a remote round still waiting skips the next.
    every_steps: int = 100
    # Prompts per preview: a fixed, seeded choice from the validation set.
    num_prompts: int = 2
    # Longest answer; local previews cost num_prompts x max_new_tokens of generation each.
    max_new_tokens: int = 64
    # 0: greedy (comparable across steps); > 0: sampled, seeded per step.
    temperature: float = 0.0
    remote: RemotePreviewConfig = field(default_factory=RemotePreviewConfig)


@dataclass
class EarlyStoppingConfig:
    """Which evaluation is the best (train.keep_best, train.final_model=best) and when a run that
    no longer improves stops. Handed to transformers' metric_for_best_model / greater_is_better
    and its EarlyStoppingCallback."""

    # Evaluations in a row without improvement before the run stops (recorded in result.json as
    # stopped_early, a success); 0: never stop early.
    patience: int = 0
    # eval_loss, or a generation eval metric eval/<name> of the profile (eval.enabled=true).
    metric: str = "eval_loss"
    # min | max: which end of `metric` is better.
    mode: str = "min"
    # An evaluation improves only when it beats the best by more than this (absolute).
    threshold: float = 0.0


@dataclass
class TrainConfig:
    """The optimisation loop, handed to transformers' `TrainingArguments` under the same names
    unless noted (loss_chunk_size, fused_loss, keep_best and final_model are trainer's own).
    Defaults suit the tiny model's short run; "HF default" marks where they differ."""

    # Peak learning rate; high for the tiny model: ~1e-5..2e-4 for real models (higher with LoRA).
    # HF default: 5e-5.
    learning_rate: float = 2e-3
    # Any of transformers' SchedulerType names (linear, cosine, constant, ...). HF default: linear.
    lr_scheduler_type: str = "cosine"
    # Share of the steps that warm the learning rate up from 0 (passed as warmup_steps < 1).
    # HF default: 0.
    warmup_ratio: float = 0.05
    # Decoupled (AdamW) weight decay.
    weight_decay: float = 0.0
    # Gradients are clipped to this global norm.
    max_grad_norm: float = 1.0
    # HF default: 8.
    per_device_train_batch_size: int = 16
    # HF default: 8.
    per_device_eval_batch_size: int = 32
    # Effective batch = per_device_train_batch_size x gradient_accumulation_steps x processes.
    gradient_accumulation_steps: int = 1
    # > 0 wins over num_train_epochs; -1 trains for num_train_epochs. HF default: -1.
    max_steps: int = 300
    # HF default: 3.0.
    num_train_epochs: float = 1.0
    # Steps between logged losses (the first and the last step are always logged). HF default: 500.
    logging_steps: int = 10
    # Steps between evaluations of the validation set. HF default: None (logging_steps).
    eval_steps: int = 50
    # Steps between checkpoints. HF default: 500.
    save_steps: int = 100
    # Newest checkpoints kept under checkpoints/. HF default: None (all kept).
    save_total_limit: int = 2
    # Any of transformers' OptimizerNames. adamw_torch_fused: one fused kernel per step (CPU and
    # CUDA); adamw_torch: the reference loop; paged_adamw_8bit (bitsandbytes): a quarter of the
    # optimizer memory, for qlora.
    optim: str = "adamw_torch_fused"
    # > 0 overlaps loading with compute, at the cost of worker start-up.
    dataloader_num_workers: int = 0
    # Recompute activations in backward: far less memory, slower steps (TrainingArguments'
    # activation_checkpointing; under FSDP prefer distributed.fsdp.activation_checkpointing).
    gradient_checkpointing: bool = False
    # Faster steps after a slow first compile (minutes on CPU); each new padded length recompiles,
    # none with data.tokens_per_batch.
    torch_compile: bool = False
    # The loss from the hidden states, this many labelled positions at a time: at most one chunk of
    # logits (4 bytes x vocabulary per position) exists at once instead of the batch's, which at a
    # 151,936-token vocabulary is gigabytes. null: the logits of every labelled position at once
    # (transformers' own loss). Models whose forward transforms the logits (Gemma 2's softcapping)
    # always use the latter. See README "Large vocabularies".
    loss_chunk_size: int | None = 256
    # none | liger | cce: the loss from a fused CUDA kernel instead of chunks (Liger Kernel's fused
    # linear cross-entropy, pip install 'trainer[liger]'; Apple's Cut Cross-Entropy, 'trainer[cce]').
    fused_loss: str = "none"
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    # Keep the checkpoint of the best evaluation (by early_stopping.metric) beside the newest ones,
    # whatever save_total_limit removes; save_steps must be a multiple of eval_steps.
    keep_best: bool = False
    # last: final_model/ holds the weights of the last step | best: those of the best checkpoint
    # (implies keep_best).
    final_model: str = "last"


@dataclass
class EvalConfig:
    """Generation eval: at every train.eval_steps and at the end, the model answers the held-out
    prompts (the validation conversations, last assistant turn removed), greedy and in batches with
    the profile's logits processors, and each answer is scored by the profile's metrics (every
    profile: exact_match; regime3: well_formed_answer; emoji_think: thinks_as_told,
    stops_as_told). Logged as eval/<metric>; answers kept in evals/step-N.jsonl."""

    # Off by default: it costs max_samples answers of up to max_new_tokens at every evaluation.
    enabled: bool = False
    # The first this many validation conversations (in file order) are answered.
    max_samples: int = 32
    # Longest answer; an answer cut here is scored as it is.
    max_new_tokens: int = 64
    # Prompts per generate call (left-padded); more: faster, more memory.
    batch_size: int = 16


@dataclass
class PeftConfig:
    """Adapters, handed to PEFT's `LoraConfig` (alpha as lora_alpha, dropout as lora_dropout)."""

    # none: full fine-tune | lora: low-rank adapters | qlora: lora over a 4-bit NF4 base
    # (bitsandbytes, CUDA only).
    method: str = "none"
    # Adapter rank: capacity (and adapter size) grows with it. PEFT default: 8.
    r: int = 16
    # Updates are scaled by alpha / r; keep alpha = 2 r when changing r. PEFT default: 8.
    alpha: int = 32
    # On the adapter's input; 0 for tiny data sets that should memorise. PEFT default: 0.
    dropout: float = 0.05
    # None: the architecture's default: every attention and MLP projection (q/k/v/o, gate/up/down)
    # for qwen3 and llama, every linear layer but the output for other families. Fewer modules:
    # less memory, less capacity.
    target_modules: list[str] | None = None
    # Modules trained in full and saved beside the adapters; None: the input and output embeddings
    # when the tokenizer gained tokens (their new rows must learn), nothing otherwise.
    modules_to_save: list[str] | None = None
    # lora/qlora: also write base + adapter merged into one full model (final_model/merged/).
    merge_on_save: bool = False


@dataclass
class MonitoringConfig:
    # TensorBoard events (scalars, HParams, previews) in the run directory.
    tensorboard: bool = True
    # Level of transformers' own log lines in the console and trainer.log: debug | info | warning | error.
    transformers_log_level: str = "warning"
    # Least seconds between rewrites of status.json; 0 rewrites it every step (a file write each).
    status_interval_sec: float = 2.0
    # Logged losses the loss trend and the loss-noise alert look back over; larger: steadier, slower.
    loss_window: int = 10
    # Alert when tokens/s falls this share below the run's best (0.5: to half).
    alert_throughput_drop: float = 0.5
    # Alert when the validation loss exceeds the train loss by this share (0.5: 1.5x): overfitting.
    alert_train_val_gap: float = 0.5
    # Alert when the loss swings around its trend by more than this share of its mean.
    alert_loss_noise: float = 0.25


@dataclass
class MlflowLoggerConfig:
    # Any MLflow tracking URI (http://host:5000, sqlite:///path/mlflow.db, databricks); an http(s)
    # server is checked before training starts. None: a SQLite store beside the runs' date
    # directories (outputs/mlflow.db, multirun/mlflow.db), its artifacts in mlartifacts/ there.
    tracking_uri: str | None = None
    # The experiment of a single run; None: "trainer". Each sweep is an experiment of its own (None:
    # named after its directory), with a parent run whose children are its jobs.
    experiment: str | None = None


@dataclass
class WandbLoggerConfig:
    # auto: online when WANDB_API_KEY is set in the environment, else offline | online (refused
    # without that key) | offline: files under the run directory's wandb/, sent later by `wandb sync`.
    mode: str = "auto"
    # The W&B project the runs are recorded in.
    project: str = "trainer"
    # The team or user the project belongs to; None: the API key's default entity.
    entity: str | None = None
    # Runs shown together; None: a sweep's jobs are grouped under its directory, a single run in none.
    group: str | None = None


@dataclass
class LoggerConfig:
    """Experiment trackers that report beside TensorBoard (monitoring.tensorboard), selected with the
    `logger` group: `logger=mlflow`, `logger=[mlflow,wandb]`. Each gets the TensorBoard scalar names,
    the resolved config as flat parameters, tags, the previews and result.json's summary."""

    # MLflow (pip install 'trainer[mlflow]'); None: not reported to.
    mlflow: MlflowLoggerConfig | None = None
    # Weights & Biases (pip install 'trainer[wandb]'); None: not reported to.
    wandb: WandbLoggerConfig | None = None


@dataclass
class SweepConfig:
    # eval_loss | final_loss | tokens_per_sec | eval/<metric> (a generation eval metric, eval.enabled)
    # | a preference metric with objective=dpo|simpo (rewards/accuracies, eval_rewards/margins, ...):
    # marks the best job of a sweep (summary.csv/md/png at its root) and is what each job returns
    # to sweepers (Optuna).
    metric: str = "eval_loss"
    # min | max: which end of `metric` is best (an Optuna sweeper's direction must agree).
    mode: str = "min"
    # Stop a sweep at its first failed job instead of recording it and going on.
    fail_fast: bool = False


@dataclass
class FsdpConfig:
    """FSDP2 settings, handed to the HF Trainer's own `fsdp_config`."""

    # True: parameters are re-sharded after forward (least memory, ZeRO-3-like); False: kept
    # gathered until backward (no second all-gather, more memory, ZeRO-2-like).
    reshard_after_forward: bool = True
    # Parameters and gradients live in CPU memory between uses: fits larger models, much slower.
    cpu_offload: bool = False
    # FSDP's own activation checkpointing (prefer it to train.gradient_checkpointing under FSDP).
    activation_checkpointing: bool = False
    # FULL_STATE_DICT: one loadable checkpoint | SHARDED_STATE_DICT: one file per rank, faster saves
    # of big models. HF default (FSDP2): SHARDED_STATE_DICT.
    state_dict_type: str = "FULL_STATE_DICT"


@dataclass
class DistributedConfig:
    # Processes the job starts with torchrun on this machine; 1: none (the job runs in this process,
    # or under the torchrun/accelerate that started it).
    nproc_per_node: int = 1
    # ddp: a full replica per process, fastest while the model fits | fsdp: parameters, gradients
    # and optimizer state sharded, for models that do not.
    strategy: str = "ddp"
    # None: nccl on CUDA, gloo on CPU.
    backend: str | None = None
    fsdp: FsdpConfig = field(default_factory=FsdpConfig)
    # A DeepSpeed JSON config (optional; needs `pip install deepspeed`); replaces `strategy`.
    deepspeed: str | None = None


@dataclass
class RunConfig:
    # The run directory; Hydra fills it with its timestamped run/sweep dir.
    output_dir: str = MISSING
    # Continue the run in output_dir: a completed run is returned as it is, any other resumes from
    # its newest complete checkpoint (or starts). Set by `resume=DIR` and by sweep resumes.
    resume: bool = False
    # The run's date (YYYY-MM-DD), what "{date}" in the system prompt stands for: the same run
    # tokenizes the same on any day. None: decided at the first start (a sweep: at the sweep's
    # start, the same for every job) and recorded in the run's .hydra/config.yaml, which resumes
    # read; a run started from Python with None gets the day it starts, each time it starts.
    date: str | None = None


@dataclass
class ObjectiveConfig:
    """What the loss learns from: chats with their answers (sft), or preference pairs of a better
    and a worse answer to one prompt (dpo, simpo; trainer.modeling.preference_loss). The names
    and defaults are TRL's (DPOConfig, CPOConfig with loss_type=simpo)."""

    # sft: cross-entropy on assistant answers | dpo: the chosen answer's log-probability ratio to
    # a frozen reference beats the rejected one's | simpo: reference-free, the length-normalised
    # log-probabilities with a target margin.
    name: str = "sft"
    # dpo: sigmoid (the DPO paper) | ipo: squared, per-token margin (IPO) | hinge (SLiC).
    loss_type: str = "sigmoid"
    # How far the policy may move from the reference (dpo), or the reward scale (simpo): higher
    # keeps it closer. TRL default: 0.1 (the SimPO paper uses 2.0-2.5).
    beta: float = 0.1
    # dpo: the reference log-probs computed once before training (adapter disabled with LoRA) and
    # cached beside the tokenized data; false: a reference forward every step (no cache, 1.5x work).
    precompute_ref: bool = True
    # simpo: the target reward margin (TRL's simpo_gamma).
    gamma: float = 0.5


@dataclass
class TrainerConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    run: RunConfig = field(default_factory=RunConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    # Seeds training, the validation split, the profile's per-example choices and the data order
    # (TrainingArguments' seed and data_seed).
    seed: int = 42

    def __post_init__(self) -> None:
        # Derived defaults, so a TrainerConfig built in Python (no Hydra) trains what the YAML does.
        # Sections of the wrong type are left for validation to name.
        if isinstance(self.data, DataConfig) and isinstance(self.model, ModelConfig) and self.data.max_length is None:
            self.data = replace(self.data, max_length=self.model.max_length)
