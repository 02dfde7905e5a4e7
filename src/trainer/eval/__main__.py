"""`python -m trainer.eval RUN_DIR [--checkpoint N]`: the same as `trainer eval RUN_DIR`."""

import sys

from trainer.cli.eval import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
