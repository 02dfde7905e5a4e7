"""`python -m trainer`: the command line lives in trainer.cli."""

from trainer.cli.main import main

if __name__ == "__main__":
    main()
