"""``python -m hpsearch.rex``: replica exchange of hyperparameters, locally or under mpirun."""

import sys

from hpsearch.cli import main

if __name__ == "__main__":
    sys.exit(main("rex"))
