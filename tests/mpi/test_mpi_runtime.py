"""Master/worker runtime on real MPI ranks: run with ``mpirun -n N python -m pytest --with-mpi``.

Every rank runs each test: rank 0 drives the search, the others serve as workers.
"""

import os

import numpy as np
import pytest

from hpsearch import load_problem, load_results
from hpsearch.loop import Search
from hpsearch.report import utilisation
from hpsearch.results import ResultsLog
from hpsearch.search import RandomSearch

SLEEPY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "problem_files", "sleepy.py")


def run_search(tmp_dir, max_evals, source=SLEEPY, seed=0):
    """Rank 0: search ``source`` on the other ranks; workers: serve. Returns the rows on rank 0."""
    from hpsearch.evaluators import mpi

    comm = mpi.world()
    if comm.rank != 0:
        mpi.serve(comm, source)
        return None
    problem = load_problem(source)
    log = ResultsLog(tmp_dir, problem.space)
    mpi.synchronise_start(comm)
    with mpi.MPIEvaluator(comm) as evaluator:
        outcome = Search(RandomSearch(problem, seed=seed), evaluator, log, max_evals).run()
    log.close()
    assert outcome.n_finished == max_evals
    return load_results(tmp_dir)


@pytest.fixture
def shared_tmp(tmp_path):
    """A directory rank 0 chose, known to every rank (only rank 0 writes in it)."""
    from hpsearch.evaluators import mpi

    return mpi.world().bcast(str(tmp_path), root=0)


@pytest.mark.mpi(min_size=2)
def test_every_job_runs_once_on_some_worker(shared_tmp):
    from hpsearch.evaluators import mpi

    size = mpi.world().size
    df = run_search(shared_tmp, max_evals=6 * (size - 1))
    if df is None:
        return
    assert sorted(df["job_id"]) == list(range(6 * (size - 1)))
    assert (df["status"] == "DONE").all()
    assert set(df["worker"]) == set(range(1, size))  # every worker took part


@pytest.mark.mpi(min_size=3)
def test_a_free_worker_is_not_held_back_by_a_slow_one(shared_tmp):
    # durations vary 30-fold (0.02-0.6 s): a master that waited for a batch would leave
    # workers idle for about the slowest evaluation each round
    from hpsearch.evaluators import mpi

    size = mpi.world().size
    df = run_search(shared_tmp, max_evals=8 * (size - 1), seed=1)
    if df is None:
        return
    df = df.sort_values("t_submit")
    gaps = []
    for _, rows in df.groupby("worker"):
        gaps += list(rows["t_submit"].to_numpy()[1:] - rows["t_end"].to_numpy()[:-1])
    latency = df["handout_latency"].dropna()
    assert len(latency) == len(df) - (size - 1)
    assert np.median(gaps) < 0.05 and np.percentile(gaps, 90) < 0.2, gaps
    assert np.median(latency) < 0.05, latency.describe()
    assert utilisation(df) > 0.7
