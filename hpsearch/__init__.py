"""hpsearch: MPI-parallel asynchronous hyperparameter and architecture search for HPC.

Importing this package imports neither mpi4py nor a deep-learning framework.
"""

from hpsearch.problem import Problem, load_problem
from hpsearch.results import load_results
from hpsearch.space import Categorical, Dimension, Integer, Ordinal, Real, Space

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "Dimension",
    "Integer",
    "Ordinal",
    "Problem",
    "Real",
    "Space",
    "__version__",
    "load_problem",
    "load_results",
]
