"""The Ackley function to minimise, with an optional simulated evaluation time.

Environment variables (read at import, so every worker sees the same problem):

- ``HPSEARCH_ACKLEY_DIM``: dimension (default 5); ``problems.ackley.ackley10`` fixes 10.
- ``HPSEARCH_ACKLEY_SLEEP``: ``"LOW,HIGH"`` seconds; each evaluation sleeps a time drawn
  uniformly from that range (default: no sleep), to stand in for training a network.
- ``HPSEARCH_ACKLEY_REPORT``: seconds; the run then takes a trial and reports after every
  such slice of its sleep, and returns the cost of its reports as metrics.
"""

from problems.ackley.problem import ackley, build_problem, make_run

problem = build_problem()
run = make_run()

__all__ = ["ackley", "problem", "run"]
