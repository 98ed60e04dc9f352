"""The contract of every search method in the registry, as the search loop runs it: plain
optimizers and trial schedulers alike, built from a parsed command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hpsearch import load_problem, load_results
from hpsearch.cli import build_parser
from hpsearch.evaluators import SerialEvaluator
from hpsearch.loop import Search
from hpsearch.methods import get_method, method_names
from hpsearch.results import ResultsLog
from hpsearch.scheduling import as_scheduler
from hpsearch.simulate import simulate
from hpsearch.stopping import STOPPERS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPPER = os.path.join(ROOT, "tests", "problem_files", "stepper.py")
#: Flags a method needs beyond the common ones, kept small so each search takes a second.
FLAGS = {
    "ambs": ["--n-initial", "3"],
    "grid": ["--grid-points", "4"],
    "pbt": ["--population", "4", "--max-steps", "6"],
    "rex": ["--replicas", "3", "--ladder", "rate=0.1:1:log", "--max-steps", "6"],
}
#: Every registered method, and every method that takes a stopper with each stopper (as
#: ``name:stopper``): early stopping is held to the same contract.
VARIANTS = method_names() + [
    f"{name}:{stopper}"
    for name in method_names()
    if get_method(name).stoppable
    for stopper in STOPPERS
    if stopper != "none"
]
METHODS = pytest.mark.parametrize("name", VARIANTS)


def build(name: str, output, seed: int = 0):
    """The method ``name`` (``method[:stopper]``) for the stepper problem, as its command
    line would build it."""
    name, _, stopper = name.partition(":")
    method = get_method(name)
    argv = [
        "--problem",
        STEPPER,
        "--output",
        str(output),
        "--seed",
        str(seed),
        *FLAGS.get(name, []),
        *(["--stopper", stopper, "--max-steps", "6"] if stopper else []),
    ]
    args = build_parser(method).parse_args(argv)
    return load_problem(STEPPER), method.build(load_problem(STEPPER), args), args


def search(name, output, max_evals=12, resume=False, seed=0):
    problem, method, _ = build(name, output, seed)
    assert problem.run is not None
    log = ResultsLog(str(output), problem.space, resume=resume)
    with SerialEvaluator(problem.run) as evaluator:
        outcome = Search(method, evaluator, log, max_evals, rerun=log.unfinished_jobs()).run()
    log.close()
    return outcome


@METHODS
def test_a_search_ends_with_a_row_for_every_job_and_continues_only_finished_checkpoints(
    name, tmp_path
):
    outcome = search(name, tmp_path)
    assert outcome.stopped_by in ("max-evals", "exhausted")
    df = load_results(str(tmp_path))
    assert df["job_id"].is_unique and len(df) == outcome.n_finished
    # the best is a result the search recorded (population methods give their best member's
    # latest segment, an optimizer its best row)
    assert outcome.best_objective in df["objective"].tolist()
    assert outcome.best_objective >= df["objective"].min()
    if "parent" in df:
        rows = df.set_index("job_id")
        for _, row in rows[rows["parent"].notna()].iterrows():
            parent = rows.loc[int(row["parent"])]
            assert parent["status"] == "DONE" and row["step_start"] == parent["step_end"]


@METHODS
def test_take_never_hands_out_more_than_asked(name, tmp_path):
    _, method, _ = build(name, tmp_path)
    scheduler = as_scheduler(method)
    scheduler.open(background=False)
    try:
        for n in (0, 1, 2):
            scheduler.keep_ready(n)
            assert len(scheduler.take(n)) <= n
    finally:
        scheduler.close()


@METHODS
def test_the_same_seed_gives_the_same_jobs_in_the_simulator(name, tmp_path):
    runs = []
    for i in range(2):
        _, method, _ = build(name, tmp_path / str(i), seed=3)
        simulate(method, 2, "uniform:1,2", str(tmp_path / str(i)), 10, master_time="zero", seed=3)
        df = load_results(str(tmp_path / str(i)))
        runs.append(df.drop(columns=["t_submit", "t_start", "t_end", "handout_latency"]))
    assert runs[0].equals(runs[1])


@METHODS
def test_a_search_cut_by_its_budget_resumes_without_repeating_a_job(name, tmp_path):
    first = search(name, tmp_path, max_evals=4)
    assert first.n_finished == 4
    second = search(name, tmp_path, max_evals=8, resume=True)
    df = load_results(str(tmp_path))
    assert second.n_finished == 8 and len(df) == 8 and df["job_id"].is_unique


@pytest.mark.parametrize("name", method_names())
def test_the_method_runs_as_python_m_hpsearch_name(name):
    proc = subprocess.run(
        [sys.executable, "-m", f"hpsearch.{name}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and f"hpsearch.{name}" in proc.stdout
