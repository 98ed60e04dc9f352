"""problems.lr_schedule: a noisy quadratic trained by SGD whose best learning rate changes
during training. Its runs continue their checkpoints exactly, report every step after saving,
and a decaying schedule, applied through continued runs, beats every fixed rate of a grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpsearch import load_problem, load_results
from hpsearch.evaluation import Job
from hpsearch.evaluators import SerialEvaluator
from hpsearch.loop import Search
from hpsearch.results import ResultsLog, load_steps
from hpsearch.search.pbt import PBT
from hpsearch.trial import NoChannel, Report, Trial
from problems.lr_schedule.compare import SCHEDULE, per_step, train
from problems.lr_schedule.model import CHECKPOINT_FILE, STEPS, restore


@pytest.fixture(scope="module")
def problem():
    return load_problem("problems.lr_schedule")


class Run:
    """Runs jobs of the problem one after the other, each with its own checkpoint folder."""

    def __init__(self, problem, tmp_path) -> None:
        self.problem, self.tmp_path = problem, tmp_path
        self.jobs = 0

    def __call__(self, learning_rate, max_steps=None, parent=None, channel=None):
        """Train (continuing job ``parent``'s checkpoint, if given) and return the job id,
        the run's result and the reports it made."""
        job_id, self.jobs = self.jobs, self.jobs + 1
        restore_from = None if parent is None else self.tmp_path / str(parent)
        step = 0 if restore_from is None else restore(restore_from)[1]
        job = Job(
            job_id,
            {"learning_rate": learning_rate},
            parent=parent,
            step=step,
            max_steps=max_steps,
            checkpoint_dir=str(self.tmp_path / str(job_id)),
            restore_from=None if restore_from is None else str(restore_from),
        )
        channel = channel if channel is not None else NoChannel()
        result = self.problem.run(job.config, Trial(job, channel))
        return job_id, result, channel.sent


def test_the_problem_declares_a_mutable_learning_rate_to_minimise(problem):
    assert problem.direction == "minimize"
    assert problem.mutable == ["learning_rate"]
    result = problem.run({"learning_rate": 0.1})  # no trial: the default number of steps
    assert result["steps"] == STEPS and 0 < result["objective"] < 1


def test_a_run_reports_every_step_after_saving_its_checkpoint(problem, tmp_path):
    seen: list[tuple[int, int]] = []  # (reported step, step of the checkpoint on disk then)

    class Checking(NoChannel):
        def send(self, report: Report) -> None:
            super().send(report)
            seen.append((report.step, restore(tmp_path / "0")[1]))

    _, result, reports = Run(problem, tmp_path)(0.1, max_steps=12, channel=Checking())
    assert [r.step for r in reports] == list(range(1, 13))
    assert all(r.error == "" and math.isfinite(r.objective) for r in reports)
    assert seen == [(s, s) for s in range(1, 13)]
    assert result["objective"] == reports[-1].objective and result["steps"] == 12
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_run_stops_when_the_search_asks(problem, tmp_path):
    class StopAtThree(NoChannel):
        def stop_requested(self, job_id: int) -> bool:
            return bool(self.sent) and self.sent[-1].step >= 3

    _, result, reports = Run(problem, tmp_path)(0.1, max_steps=20, channel=StopAtThree())
    assert [r.step for r in reports] == [1, 2, 3] and result["steps"] == 3


def test_a_continued_run_repeats_the_uninterrupted_one(problem, tmp_path):
    run = Run(problem, tmp_path)
    first, _, _ = run(0.3, max_steps=10)
    continued, result, reports = run(0.3, max_steps=25, parent=first)
    whole, expected, whole_reports = run(0.3, max_steps=25)
    assert [r.step for r in reports] == list(range(11, 26))
    assert [r.objective for r in reports] == [r.objective for r in whole_reports[10:]]
    assert result["objective"] == expected["objective"]
    theta, step, lrs = restore(tmp_path / str(continued))
    whole_theta, *_ = restore(tmp_path / str(whole))
    assert step == 25 and np.array_equal(theta, whole_theta) and (lrs == 0.3).all()
    assert (tmp_path / str(continued) / CHECKPOINT_FILE).exists()


def test_a_decaying_schedule_through_segments_beats_every_fixed_rate(problem, tmp_path):
    grid = [0.01, 0.03, 0.1, 0.3, 1.0]
    fixed = [problem.run({"learning_rate": lr})["objective"] for lr in grid]
    best = min(fixed)
    # large rates stall at their noise floor, small ones are slow: the best is inside the grid
    assert fixed.index(best) not in (0, len(grid) - 1)
    run = Run(problem, tmp_path)
    parent = None
    ends = [first - 1 for first, _ in SCHEDULE[1:]] + [STEPS]
    for (_, lr), end in zip(SCHEDULE, ends, strict=True):
        parent, result, _ = run(lr, max_steps=end, parent=parent)
    _, _, lrs = restore(tmp_path / str(parent))
    assert list(lrs) == per_step(SCHEDULE)  # each segment trained with the rate it was given
    assert result["objective"] == train(per_step(SCHEDULE))
    assert result["objective"] * 4 < best  # measured: 11x lower than this grid's best


def test_population_based_training_runs_it_through_the_search_loop(problem, tmp_path):
    pbt = PBT(problem, population=4, interval=4, max_steps=12, seed=0)
    log = ResultsLog(str(tmp_path), problem.space)
    outcome = Search(pbt, SerialEvaluator(problem.run), log, 10_000).run()
    log.close()
    assert outcome.stopped_by == "exhausted"
    df = load_results(str(tmp_path))
    assert (df["status"] == "DONE").all()
    assert sorted(df.groupby("member")["step_end"].max()) == [12] * 4
    steps = load_steps(str(tmp_path))
    for job_id, row in df.set_index("job_id").iterrows():
        reported = steps[steps["job_id"] == job_id]["step"].tolist()
        assert reported == list(range(int(row["step_start"]) + 1, int(row["step_end"]) + 1))
