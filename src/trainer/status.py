"""`python -m trainer.status DIR`, as README and scripts call it: the same as `trainer status DIR`."""

import sys

from trainer.cli.status import main

if __name__ == "__main__":
    sys.exit(main())
