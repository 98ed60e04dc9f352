"""``python -m hpsearch.pbt``: population-based training, locally or under mpirun."""

import sys

from hpsearch.cli import main

if __name__ == "__main__":
    sys.exit(main("pbt"))
