"""conf/train.yaml names the secret guard callback by this path."""

from trainer.cli.secret_guard import SecretGuard

__all__ = ["SecretGuard"]
