"""``python -m hpsearch.grid``: grid search, locally or under mpirun."""

import sys

from hpsearch.cli import main

if __name__ == "__main__":
    sys.exit(main("grid"))
