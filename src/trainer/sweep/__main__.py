"""`python -m trainer.sweep resume=DIR`, as README and scripts call it: see trainer.cli.main.sweep_command."""

import sys

from trainer.cli.main import sweep_command

if __name__ == "__main__":
    sys.exit(sweep_command(sys.argv[1:]))
