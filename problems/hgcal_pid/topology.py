"""The trigger network's topology alone: three hidden layers of 4 to 128 neurons, 256 in all.

The search of the FPGA-trigger study: only the widths of a three-layer network change, every
other setting stays at :mod:`problems.hgcal_pid`'s defaults, and a network must fit the
trigger's neuron budget. ``python -m hpsearch.grid --grid-points 6`` walks the study's kind of
grid (4, 8, 16, 32, 64, 128 neurons per layer); scripts/study_grid_vs_bo.py compares it with
Bayesian searches.
"""

from __future__ import annotations

from hpsearch import Problem
from hpsearch.trial import Trial
from problems.hgcal_pid.model import NEURON_BUDGET
from problems.hgcal_pid.model import problem as full_problem
from problems.hgcal_pid.model import run as train

N_LAYERS = 3
#: Everything but the widths, as problems.hgcal_pid sets it by default.
FIXED = {
    name: value
    for name, value in full_problem.space.default_config().items()
    if value is not None and not name.startswith("units_")
} | {"n_layers": N_LAYERS}

# No default topology: every search starts from no prior, as in the study.
problem = Problem("hgcal_pid_topology", direction="maximize")
for layer in range(N_LAYERS):
    problem.add_hyperparameter(f"units_{layer}", (4, 128, "log-uniform"))
problem.add_constraint(
    lambda config: sum(config[f"units_{i}"] for i in range(N_LAYERS)) <= NEURON_BUDGET
)
problem.score_predictions = full_problem.score_predictions


def network(config: dict) -> dict:
    """The full problems.hgcal_pid configuration of a topology."""
    return FIXED | {f"units_{i}": int(config[f"units_{i}"]) for i in range(N_LAYERS)}


def run(config: dict, trial: Trial | None = None) -> dict:
    """Train the three-layer network of ``config`` as problems.hgcal_pid does (same data,
    epochs, early stopping, objective and metrics)."""
    return train(network(config), trial)
