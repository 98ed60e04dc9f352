"""Ackley in 10 dimensions (``--problem problems.ackley.ackley10``)."""

from problems.ackley.problem import build_problem, make_run

problem = build_problem(10)
run = make_run()
