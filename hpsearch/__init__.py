"""hpsearch: MPI-parallel asynchronous hyperparameter and architecture search for HPC.

Importing this package imports neither mpi4py nor a deep-learning framework.
"""

from hpsearch.api import optimize
from hpsearch.arch import MLPSpace, build_model, count_macs, count_neurons, count_params
from hpsearch.pareto import pareto_front
from hpsearch.problem import Problem, load_problem
from hpsearch.results import load_results
from hpsearch.space import Categorical, Dimension, Integer, Ordinal, Real, Space

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "Dimension",
    "Integer",
    "MLPSpace",
    "Ordinal",
    "Problem",
    "Real",
    "Space",
    "__version__",
    "build_model",
    "count_macs",
    "count_neurons",
    "count_params",
    "load_problem",
    "load_results",
    "optimize",
    "pareto_front",
]
