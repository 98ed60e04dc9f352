"""A problem that imports where the search starts but not on its workers (a package missing
on the compute nodes), or hangs there: HPSEARCH_WORKER_IMPORT=fail or hang.

A worker is a process started by the local pool or an MPI rank other than 0.
"""

import multiprocessing
import os
import time

from hpsearch import Problem

ON_WORKER = multiprocessing.parent_process() is not None or os.environ.get("PMI_RANK", "0") != "0"
MODE = os.environ.get("HPSEARCH_WORKER_IMPORT", "")
if ON_WORKER and MODE == "fail":
    raise ImportError("No module named 'only_on_the_login_node'")
if ON_WORKER and MODE == "hang":
    time.sleep(3600)

problem = Problem("worker_import", direction="minimize")
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config: dict) -> float:
    time.sleep(0.05)
    return config["x"]
