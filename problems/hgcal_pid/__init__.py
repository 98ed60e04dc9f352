"""Electron/pion identification from longitudinal shower profiles, under a neuron budget.

Topology search for a trigger network that must fit an FPGA: up to 15 hidden layers with at
most 256 hidden neurons in all. Data come from the shower generator in
:mod:`problems.hgcal_pid.showers`. ``HPSEARCH_QUICK=1`` shrinks data and epochs for tests;
``HPSEARCH_HGCAL_MULTI=1`` makes it a two-objective problem (purity, -neurons).
"""

from problems.hgcal_pid.model import problem, run

__all__ = ["problem", "run"]
