"""``python -m hpsearch.optuna``: search with an Optuna sampler, locally or under mpirun."""

import sys

from hpsearch.cli import main

if __name__ == "__main__":
    sys.exit(main("optuna"))
