"""Trials through the real search loop: steps.csv, lineage and progress columns, checkpoints
(usable only when complete, pruned, continued), stop decisions, schedulers, the simulator."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pytest

from hpsearch import load_problem, load_results
from hpsearch.checkpoints import USABLE_MARKER
from hpsearch.evaluation import Job, Result
from hpsearch.evaluators import ProcessEvaluator, SerialEvaluator
from hpsearch.evaluators.base import Evaluator
from hpsearch.loop import Search
from hpsearch.problem import Problem
from hpsearch.results import ResultsLog, load_steps
from hpsearch.scheduling import Scheduler, TrialPlan
from hpsearch.search.base import Optimizer
from hpsearch.simulate import DurationModel, simulate
from hpsearch.trial import Report

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "problem_files")
STEPPER = os.path.join(FILES, "stepper.py")
SAVER = os.path.join(FILES, "saver.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Planned(Scheduler):
    """Hands out the given plans in order; then continues every finished job listed in
    ``continue_to`` (job id -> max_steps) from its checkpoint. Remembers what it learned."""

    def __init__(self, problem: Problem, plans: Iterable[TrialPlan], continue_to=None) -> None:
        self.problem = problem
        self.plans = list(plans)
        self.continue_to = dict(continue_to or {})
        self.results: list[Result] = []
        self.reports: list[Report] = []
        self.stop_after: int | None = None  # stop every trial at this reported step

    def take(self, n: int) -> list[TrialPlan]:
        taken, self.plans = self.plans[:n], self.plans[n:]
        return taken

    def report(self, job: Job, report: Report) -> bool:
        self.reports.append(report)
        return self.stop_after is not None and report.step >= self.stop_after

    def finished(self, results: list[Result]) -> None:
        self.results += results
        for r in results:
            if r.job.job_id in self.continue_to and r.checkpoint is not None:
                steps = self.continue_to.pop(r.job.job_id)
                self.plans.append(
                    TrialPlan(r.config, member=0, parent=r.job.job_id, max_steps=steps)
                )

    @property
    def exhausted(self) -> bool:
        return not self.plans and not self.continue_to


def search(tmp_path, scheduler, evaluator: Evaluator, max_evals=100, **options):
    log = ResultsLog(str(tmp_path), scheduler.problem.space)
    if evaluator.virtual:
        log.t0 = 0.0  # rows hold the evaluator's clock as it is
    try:
        with evaluator:
            outcome = Search(scheduler, evaluator, log, max_evals, **options).run()
    finally:
        log.close()
    return outcome


def test_steps_csv_and_progress_columns_from_a_plain_optimizer(tmp_path, monkeypatch):
    from hpsearch.search import RandomSearch

    problem = load_problem(STEPPER)
    assert problem.run is not None
    outcome = search(tmp_path, RandomSearch(problem, seed=0), SerialEvaluator(problem.run), 4)
    assert outcome.n_finished == 4
    df = load_results(str(tmp_path))
    steps = load_steps(str(tmp_path))
    assert list(steps.columns) == ["job_id", "step", "objective", "t", "m:weights", "error"]
    assert len(steps) == 4 * 5 and (steps["error"] == "").all()
    for job_id, rows in steps.groupby("job_id"):
        assert rows["step"].tolist() == [1, 2, 3, 4, 5]
        assert rows["t"].is_monotonic_increasing
        row = df[df["job_id"] == job_id].iloc[0]
        assert row["objective"] == pytest.approx(rows["objective"].iloc[-1])
    assert df["step_start"].tolist() == [0] * 4 and df["step_end"].tolist() == [5] * 4
    assert not df["stopped"].any()
    assert "member" not in df and "parent" not in df  # no population, no continuation


def test_invalid_reports_are_recorded_with_their_error_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_STEPPER_BAD", "step")
    from hpsearch.search import RandomSearch

    problem = load_problem(STEPPER)
    with ProcessEvaluator(STEPPER, 1) as evaluator:
        log = ResultsLog(str(tmp_path), problem.space)
        Search(RandomSearch(problem, seed=0), evaluator, log, 1).run()
        log.close()
    steps = load_steps(str(tmp_path))
    assert steps["step"].tolist() == [1, 2, 2, 4, 5]
    assert steps["error"].tolist()[2] == "report(): step 2 does not increase (previous step 2)"
    assert (steps["error"].drop(index=2) == "").all()
    assert load_results(str(tmp_path))["status"].tolist() == ["DONE"]


def test_a_scheduler_continues_a_job_from_its_checkpoint_as_if_uninterrupted(tmp_path):
    problem = load_problem(STEPPER)
    assert problem.run is not None
    config = {"rate": 0.5, "x": 0.1}
    scheduler = Planned(problem, [TrialPlan(config, member=0, max_steps=2)], continue_to={0: 5})
    outcome = search(tmp_path, scheduler, SerialEvaluator(problem.run))
    assert outcome.stopped_by == "exhausted"
    df = load_results(str(tmp_path)).set_index("job_id")
    assert df.loc[1, "parent"] == 0 and df.loc[1, "member"] == 0
    assert (df.loc[0, "step_start"], df.loc[0, "step_end"]) == (0, 2)
    assert (df.loc[1, "step_start"], df.loc[1, "step_end"]) == (2, 5)
    assert df.loc[1, "m:weights"] == pytest.approx(5 * 0.5)  # two steps restored + three more
    assert load_steps(str(tmp_path))["step"].tolist() == [1, 2, 3, 4, 5]
    for job_id, step in [(0, 2), (1, 5)]:
        marker = tmp_path / "checkpoints" / str(job_id) / USABLE_MARKER
        assert json.loads(marker.read_text())["step"] == step


def test_a_stop_decision_ends_the_run_early_and_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_STEPPER_SLEEP", "0.1")  # far longer than a message round trip
    monkeypatch.setenv("HPSEARCH_STEPPER_STEPS", "10")
    problem = load_problem(STEPPER)
    scheduler = Planned(problem, [TrialPlan({"rate": 0.5, "x": 0.1})])
    scheduler.stop_after = 2
    with ProcessEvaluator(STEPPER, 1) as evaluator:
        log = ResultsLog(str(tmp_path), problem.space)
        Search(scheduler, evaluator, log, 1).run()
        log.close()
    row = load_results(str(tmp_path)).iloc[0]
    assert row["stopped"] and row["status"] == "DONE"
    assert 2 <= row["step_end"] <= 3  # the decision may arrive one report late
    assert row["step_end"] == load_steps(str(tmp_path))["step"].max()


def test_reports_after_the_search_stopped_are_answered_stop(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_STEPPER_SLEEP", "0.3")
    monkeypatch.setenv("HPSEARCH_STEPPER_STEPS", "30")
    from hpsearch.search import RandomSearch

    problem = load_problem(STEPPER)
    with ProcessEvaluator(STEPPER, 1) as evaluator:
        log = ResultsLog(str(tmp_path), problem.space)
        outcome = Search(
            RandomSearch(problem, seed=0), evaluator, log, 5, timeout=2.5, grace=20
        ).run()
        log.close()
    assert outcome.stopped_by == "timeout"
    row = load_results(str(tmp_path)).iloc[0]
    assert row["status"] == "DONE" and row["stopped"] and row["step_end"] < 30


@pytest.mark.parametrize(
    ("mode", "usable_step"),
    [("finish", 1), ("hang_after_report", 1), ("hang_mid_save", None)],
)
def test_a_checkpoint_is_usable_only_when_complete(tmp_path, mode, usable_step):
    problem = load_problem(SAVER)
    scheduler = Planned(problem, [TrialPlan({"mode": mode, "x": 0.5})])
    with ProcessEvaluator(SAVER, 1, eval_timeout=2.0) as evaluator:
        log = ResultsLog(str(tmp_path), problem.space)
        Search(scheduler, evaluator, log, 1).run()
        log.close()
    (result,) = scheduler.results
    directory = tmp_path / "checkpoints" / "0"
    if usable_step is None:
        assert result.status == "TIMEOUT" and result.checkpoint is None
        assert not directory.exists()  # a half-written checkpoint is never left to restore
    else:
        assert result.checkpoint == str(directory)
        assert json.loads((directory / USABLE_MARKER).read_text())["step"] == usable_step
        assert (directory / "weights.bin").stat().st_size == 1000


def test_checkpoints_beyond_the_best_k_are_deleted(tmp_path):
    problem = load_problem(SAVER)
    xs = [0.9, 0.1, 0.5, 0.3, 0.7]
    scheduler = Planned(problem, [TrialPlan({"mode": "finish", "x": x}) for x in xs])
    assert problem.run is not None
    search(tmp_path, scheduler, SerialEvaluator(problem.run), keep_checkpoints=2)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "3"]  # x = 0.1 and 0.3


def test_a_plain_run_function_gets_no_checkpoint_directory(tmp_path):
    from hpsearch.search import RandomSearch

    problem = load_problem(os.path.join(FILES, "sleepy.py"))
    assert problem.run is not None
    search(tmp_path, RandomSearch(problem, seed=0), SerialEvaluator(problem.run), 2)
    assert sorted(os.listdir(tmp_path)) == [
        "results.csv",
        "submitted.jsonl",
    ]


def stepper_search(tmp_path, *options, sleep="0.1", steps="20", hang_after="0"):
    env = {**os.environ, "HPSEARCH_STEPPER_SLEEP": sleep, "HPSEARCH_STEPPER_STEPS": steps}
    env["HPSEARCH_STEPPER_HANG_AFTER"] = hang_after
    command = [sys.executable, "-m", "hpsearch.rs", "--problem", STEPPER, "--output", str(tmp_path)]
    command += ["--seed", "0", *map(str, options)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return load_results(str(tmp_path))


def cut_after_step_3(tmp_path, *options):
    """A search whose runs report step 3, then hang until its time-out kills them: the kill
    never lands between a save and its report, which would leave no usable checkpoint."""
    cut = stepper_search(tmp_path, *options, "--timeout", 6, "--grace", 0, hang_after="3")
    assert set(cut["status"]) == {"CANCELLED"}
    reported = load_steps(str(tmp_path)).groupby("job_id")["step"].max()
    assert (reported == 3).all(), reported
    return cut


def test_resume_continues_cancelled_jobs_from_their_last_reported_checkpoints(tmp_path):
    # two jobs cut by the time-out, with room for a single kept checkpoint: both survive
    options = ["--max-evals", 2, "--workers", 2, "--keep-checkpoints", 1]
    assert len(cut_after_step_3(tmp_path, *options)) == 2
    df = stepper_search(tmp_path, *options, "--resume")
    rerun = df[df["status"] == "DONE"].set_index("job_id")
    assert sorted(rerun.index) == [0, 1]
    for _, row in rerun.iterrows():
        assert row["step_start"] == 3 and row["step_end"] == 20
        assert row["m:weights"] == pytest.approx(20 * row["p:rate"])  # continued, not restarted


def test_a_rerun_cut_before_it_writes_keeps_the_checkpoint_it_continues(tmp_path):
    options = ["--max-evals", 1, "--workers", 1]
    cut_after_step_3(tmp_path, *options)
    # a resumed run cut again before its first step: the checkpoint it restored stays usable
    stepper_search(tmp_path, *options, "--resume", "--timeout", 2, "--grace", 0, sleep="30")
    assert list(load_results(str(tmp_path))["status"]) == ["CANCELLED", "CANCELLED"]
    df = stepper_search(tmp_path, *options, "--resume")
    done = df[df["status"] == "DONE"]
    assert len(done) == 1
    row = done.iloc[0]
    assert row["step_start"] == 3 and row["step_end"] == 20
    assert row["m:weights"] == pytest.approx(20 * row["p:rate"])  # continued, not restarted


def test_numpy_steps_and_plans_are_recorded_as_numbers(tmp_path):
    path = tmp_path / "numpy_steps.py"
    path.write_text(
        "import numpy as np\n"
        "from hpsearch import Problem\n"
        "problem = Problem('np', direction='minimize')\n"
        "problem.add_hyperparameter('x', (0.0, 1.0))\n"
        "def run(config, trial):\n"
        "    for step in np.arange(1, 4):\n"
        "        (trial.checkpoint_dir / 'w').write_text(str(step))\n"
        "        trial.report(step, np.float32(config['x']) / step)\n"
        "    return np.float64(config['x'])\n"
    )
    problem = load_problem(str(path))
    scheduler = Planned(problem, [TrialPlan({"x": 0.5}, member=np.int64(0), max_steps=np.int64(3))])
    out = tmp_path / "out"
    with ProcessEvaluator(str(path), 1) as evaluator:
        log = ResultsLog(str(out), problem.space)
        Search(scheduler, evaluator, log, 5).run()
        log.close()
    df = load_results(str(out))
    assert list(df["status"]) == ["DONE"] and df["step_end"].tolist() == [3]
    assert load_steps(str(out))["step"].tolist() == [1, 2, 3]
    assert json.loads((out / "checkpoints" / "0" / USABLE_MARKER).read_text())["step"] == 3


class Ticks(Evaluator):
    """A scripted evaluator on a clock of ticks: each job ends the number of ticks after its
    submission that the script gives its configuration; :meth:`wait` jumps to the next end."""

    virtual = True

    def __init__(self, run, n_workers: int, duration) -> None:
        self.run, self.n_workers, self.duration = run, n_workers, duration
        self.tick = 0
        self.jobs: dict[int, tuple[int, Job, int]] = {}  # worker -> (end tick, job, ...)
        self.free = list(range(n_workers))

    def now(self) -> float:
        return float(self.tick)

    def running(self) -> list[Job]:
        return [job for _, job, _ in self.jobs.values()]

    def submit(self, job: Job) -> None:
        worker = min(self.free)
        self.free.remove(worker)
        job.t_submit = self.tick
        self.jobs[worker] = (self.tick + self.duration(job.config), job, worker)

    def wait(self, timeout: float | None = None) -> list[Result]:
        from hpsearch.evaluation import evaluate

        if not self.jobs:
            return []
        self.tick = min(end for end, _, _ in self.jobs.values())
        done = []
        for worker, (end, job, _) in sorted(self.jobs.items()):
            if end == self.tick:
                del self.jobs[worker]
                self.free.append(worker)
                done.append(Result(job, evaluate(self.run, job), worker=worker))
        return sorted(done, key=lambda r: r.job.job_id)

    def cancel_all(self) -> list[Result]:
        return []


class InOrder(Optimizer):
    def _ask(self, n: int) -> np.ndarray:
        start = self.n_told + self.n_pending
        return self.space.encode([{"i": k} for k in range(start, start + n)])


def test_the_simulator_hands_out_jobs_like_the_real_loop(tmp_path):
    durations = [3, 1, 2, 2, 1, 1, 4, 1, 2, 3, 1, 2]
    problem = Problem("count", direction="minimize")
    problem.add_hyperparameter("i", (0, 1000))
    problem.run = lambda config: float(config["i"])

    search(
        tmp_path / "scripted",
        InOrder(problem),
        Ticks(problem.run, 3, lambda c: durations[c["i"]]),
        12,
    )
    model = DurationModel("script", lambda config, rng: durations[config["i"]])
    simulate(InOrder(problem), 3, model, str(tmp_path / "simulated"), 12, master_time="zero")

    def order(path) -> pd.DataFrame:
        df = load_results(str(path)).sort_values("job_id")
        return df[["job_id", "p:i", "worker", "t_submit"]].reset_index(drop=True)

    pd.testing.assert_frame_equal(order(tmp_path / "scripted"), order(tmp_path / "simulated"))


# the serial evaluator answers at once, the simulator one report late: at step 4, the end
@pytest.mark.parametrize(("backend", "stop_after"), [("serial", 4), ("virtual", 3)])
def test_a_stop_that_comes_at_the_last_step_is_no_early_stop(tmp_path, backend, stop_after):
    problem = load_problem(STEPPER)
    scheduler = Planned(problem, [TrialPlan({"rate": 0.5, "x": 0.1}, max_steps=4)])
    scheduler.stop_after = stop_after
    assert problem.run is not None
    if backend == "serial":
        evaluator: Evaluator = SerialEvaluator(problem.run)
    else:
        from hpsearch.evaluators.virtual import VirtualEvaluator

        model = DurationModel("fixed", lambda config, rng: 10.0)
        evaluator = VirtualEvaluator(problem.run, 1, model, master_time="zero")
    search(tmp_path, scheduler, evaluator, 1)
    row = load_results(str(tmp_path)).iloc[0]
    assert row["step_end"] == 4 and not row["stopped"]


def test_the_simulator_replays_reports_and_stops_one_report_late(tmp_path):
    problem = load_problem(STEPPER)
    plans = [TrialPlan({"rate": 0.5, "x": 0.1}), TrialPlan({"rate": 0.2, "x": 0.1})]
    scheduler = Planned(problem, plans)
    scheduler.stop_after = 3
    model = DurationModel("fixed", lambda config, rng: 10.0)
    from hpsearch.evaluators.virtual import VirtualEvaluator

    assert problem.run is not None
    evaluator = VirtualEvaluator(problem.run, 1, model, master_time="zero")
    log = ResultsLog(str(tmp_path), problem.space, fsync=False)
    log.t0 = 0.0
    Search(scheduler, evaluator, log, 10).run()
    log.close()
    df = load_results(str(tmp_path))
    steps = load_steps(str(tmp_path))
    assert df["step_end"].tolist() == [4, 4] and df["stopped"].all()
    assert df["t_end"].tolist() == [8.0, 16.0]  # 5 reports over 10 s: ends at the 4th
    assert steps[steps["job_id"] == 0]["t"].tolist() == [2.0, 4.0, 6.0, 8.0]
    assert df["objective"].tolist() == pytest.approx([abs(2.0 - 3), abs(0.8 - 3)])
    assert not math.isnan(df["t_end"].max())


def test_a_run_with_a_second_parameter_that_is_not_a_trial_is_rejected(tmp_path):
    path = tmp_path / "wrong.py"
    path.write_text(
        "from hpsearch import Problem\n"
        "problem = Problem('wrong')\n"
        "problem.add_hyperparameter('x', (0.0, 1.0))\n"
        "def run(config, epochs):\n"
        "    return config['x']\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpsearch.rs",
            "--problem",
            str(path),
            "--output",
            str(tmp_path / "o"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "the second parameter must be the trial, named 'trial' (got 'epochs')" in proc.stderr


def test_the_worked_example_of_docs_trials_md_runs_as_described(tmp_path):
    from hpsearch.search import RandomSearch

    with open(os.path.join(ROOT, "docs", "trials.md")) as f:
        text = f.read()
    blocks = text.split("```python\n")
    (code,) = [b.split("```")[0] for b in blocks if "class ContinueBest" in b]
    namespace: dict = {}
    exec(code, namespace)
    problem = load_problem(STEPPER)
    assert problem.run is not None
    scheduler = namespace["ContinueBest"](RandomSearch(problem, seed=0))
    outcome = search(tmp_path, scheduler, SerialEvaluator(problem.run), keep_checkpoints=0)
    assert outcome.stopped_by == "exhausted"
    df = load_results(str(tmp_path)).set_index("job_id")
    short, continued = df[df["parent"].isna()], df[df["parent"].notna()]
    assert len(short) == 8 and (short["step_end"] == 2).all()
    assert len(continued) == 4 and (continued["step_start"] == 2).all()
    assert (continued["step_end"] == 6).all()
    best_half = short["objective"].nsmallest(4).index
    assert sorted(continued["parent"].astype(int)) == sorted(best_half)
    # with keep_checkpoints=0 only what a trial still needed survived, and nothing is left
    assert not (tmp_path / "checkpoints").exists() or not os.listdir(tmp_path / "checkpoints")


def test_a_simulated_scheduler_with_nothing_to_hand_out_and_nothing_running_ends(tmp_path):
    from hpsearch.evaluators.virtual import VirtualEvaluator

    problem = load_problem(STEPPER)
    assert problem.run is not None
    # waits for a job that will never finish: no trial is ever ready again
    scheduler = Planned(problem, [TrialPlan({"rate": 0.5, "x": 0.1})], continue_to={7: 4})
    evaluator = VirtualEvaluator(problem.run, 2, lambda config, rng: 5.0, master_time="zero")
    outcome = search(tmp_path, scheduler, evaluator, 10)
    assert (outcome.stopped_by, outcome.n_finished) == ("exhausted", 1)


def test_the_simulator_stops_one_report_late_however_dense_the_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_STEPPER_STEPS", "50")
    from hpsearch.evaluators.virtual import VirtualEvaluator

    problem = load_problem(STEPPER)
    assert problem.run is not None
    scheduler = Planned(problem, [TrialPlan({"rate": 0.5, "x": 0.1})])
    scheduler.stop_after = 3
    evaluator = VirtualEvaluator(problem.run, 1, lambda config, rng: 5.0, master_time="zero")
    search(tmp_path, scheduler, evaluator, 10)
    (result,) = scheduler.results
    assert result.step_end == 4 and result.outcome.stopped  # reports 0.1 virtual s apart
    assert result.outcome.t_end == pytest.approx(0.4)
    # the run went on to step 50 when it was called: nothing to continue at step 4
    assert result.checkpoint is None
