"""`python -m trainer.sweep resume=DIR`, as README and scripts call it: see trainer.cli.sweep."""

import sys

from trainer.cli.sweep import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
