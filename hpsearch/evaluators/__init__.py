"""Evaluator backends: where configurations are evaluated (in-process, local pool, MPI ranks)."""

from hpsearch.evaluators.base import Evaluator
from hpsearch.evaluators.process import ProcessEvaluator
from hpsearch.evaluators.serial import SerialEvaluator

__all__ = ["Evaluator", "ProcessEvaluator", "SerialEvaluator"]
