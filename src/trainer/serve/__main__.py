"""`python -m trainer.serve --model PATH [--allow-dir DIR ...] [--host 127.0.0.1 --port 8765]`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from trainer.errors import UserError, describe_problems
from trainer.serve.limits import ServerLimits

log = logging.getLogger("trainer.serve")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
EXIT_USER_ERROR = 2


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ServerLimits()
    parser = argparse.ArgumentParser(prog="python -m trainer.serve", description=__doc__)
    parser.add_argument("--model", required=True, help="local model directory (a final_model/ or checkpoint)")
    parser.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        type=Path,
        help="a directory whose model directories (e.g. a run's checkpoints) requests may name; repeatable",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind; loopback unless you mean otherwise")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--served-model-name", help="the model's id in /v1/models (default: --model)")
    parser.add_argument("--cache-size", type=int, default=2, help="models kept loaded at once (checkpoints included)")
    parser.add_argument(
        "--dtype", choices=("float32", "bfloat16", "float16"), help="default: bfloat16 on a GPU, else float32"
    )
    parser.add_argument(
        "--token-env", help="NAME of an environment variable holding the bearer token clients must send"
    )
    limits = parser.add_argument_group("limits (per request unless said otherwise)")
    limits.add_argument("--max-tokens", type=int, default=defaults.max_tokens, help="largest max_tokens (%(default)s)")
    limits.add_argument(
        "--max-prompt-tokens", type=int, default=defaults.max_prompt_tokens, help="longest prompt (%(default)s tokens)"
    )
    limits.add_argument(
        "--max-body-bytes", type=int, default=defaults.max_body_bytes, help="largest request body (%(default)s)"
    )
    limits.add_argument(
        "--queue-size",
        type=int,
        default=defaults.queue_size,
        help="requests waiting behind the one generating; beyond: 503 + Retry-After (%(default)s)",
    )
    limits.add_argument(
        "--request-timeout",
        type=float,
        default=defaults.request_timeout_sec,
        help="seconds from arrival to answer, queueing included (%(default)s)",
    )
    return parser.parse_args(argv)


def server_limits(arguments: argparse.Namespace) -> ServerLimits:
    return ServerLimits(
        max_tokens=arguments.max_tokens,
        max_prompt_tokens=arguments.max_prompt_tokens,
        max_body_bytes=arguments.max_body_bytes,
        queue_size=arguments.queue_size,
        request_timeout_sec=arguments.request_timeout,
    )


def argument_problems(arguments: argparse.Namespace, limits: ServerLimits) -> list[str]:
    problems = limits.problems()
    if not (Path(arguments.model) / "config.json").is_file():
        problems.append(f"--model {arguments.model}: not a model directory (no config.json in it)")
    problems += [f"--allow-dir {path}: not a directory" for path in arguments.allow_dir if not path.is_dir()]
    if arguments.cache_size < 1:
        problems.append(f"--cache-size must be >= 1 (got {arguments.cache_size})")
    return problems


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    limits = server_limits(arguments)
    # Before the slow imports: a mistyped flag is reported at once.
    if problems := argument_problems(arguments, limits):
        log.error("%s", describe_problems("python -m trainer.serve", problems))
        sys.exit(EXIT_USER_ERROR)
    token = None
    if arguments.token_env:
        token = os.environ.get(arguments.token_env)
        if not token:
            log.error("--token-env %s: that environment variable is not set", arguments.token_env)
            sys.exit(EXIT_USER_ERROR)
    if arguments.host not in LOOPBACK_HOSTS and token is None:
        log.warning("Serving on %s without a token: anyone who can reach it can use it", arguments.host)
    try:
        from trainer.serve.app import create_app
        from trainer.serve.server import build_server
    except ImportError as error:
        sys.exit(f"trainer.serve needs the 'serve' extra: pip install 'trainer[serve]' ({error})")
    import torch

    from trainer.serve.models import ModelCache

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, arguments.dtype or ("bfloat16" if device == "cuda" else "float32"))
    models = ModelCache(
        arguments.model,
        arguments.served_model_name or arguments.model,
        arguments.allow_dir,
        arguments.cache_size,
        dtype,
        device,
    )
    try:
        models.load(models.default_path)  # a bad --model fails here, not at the first request
    except (UserError, OSError, ValueError) as error:
        log.error("--model %s could not be loaded: %s", arguments.model, str(error).splitlines()[0])
        sys.exit(EXIT_USER_ERROR)
    build_server(create_app(models, limits, token), arguments.host, arguments.port).run()


if __name__ == "__main__":
    main()
