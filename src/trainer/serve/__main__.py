"""`python -m trainer.serve --model PATH [--host 127.0.0.1 --port 8765]`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

log = logging.getLogger("trainer.serve")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainer.serve", description=__doc__)
    parser.add_argument("--model", required=True, help="local model directory (a final_model/ or checkpoint)")
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    try:
        import uvicorn

        from trainer.serve.app import create_app
    except ImportError as error:
        sys.exit(f"trainer.serve needs the 'serve' extra: pip install 'trainer[serve]' ({error})")
    import torch

    from trainer.errors import UserError
    from trainer.serve.models import ModelCache

    token = None
    if arguments.token_env:
        token = os.environ.get(arguments.token_env)
        if not token:
            sys.exit(f"--token-env {arguments.token_env}: that environment variable is not set")
    if arguments.host not in LOOPBACK_HOSTS and token is None:
        log.warning("Serving on %s without a token: anyone who can reach it can use it", arguments.host)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, arguments.dtype or ("bfloat16" if device == "cuda" else "float32"))
    models = ModelCache(
        arguments.model, arguments.served_model_name or arguments.model, arguments.cache_size, dtype, device
    )
    try:
        models.get(None)  # the served model loads now: a bad path fails here, not at the first request
    except UserError as error:
        sys.exit(str(error))
    uvicorn.run(create_app(models, token), host=arguments.host, port=arguments.port, log_level="info")


if __name__ == "__main__":
    main()
