import math
import time

import pandas as pd
import pytest

from hpsearch import Problem, load_results
from hpsearch.evaluation import DONE, FAILED, Job, Outcome, Result
from hpsearch.results import ResultsError, ResultsLog


def make_problem() -> Problem:
    problem = Problem("p")
    problem.add_hyperparameter("lr", (1e-4, 1e-1, "log-uniform"))
    problem.add_hyperparameter("units", (8, 64))
    problem.add_hyperparameter("act", ["relu", "tanh"])
    problem.add_hyperparameter("batch", [16, 32], ordinal=True)
    return problem


def result(job_id, config, objective=0.5, status=DONE, metrics=None, error=""):
    job = Job(job_id, config, t_submit=1000.0)
    outcome = Outcome(status, objective, metrics or {}, error, t_start=1001.0, t_end=1003.5)
    return Result(job, outcome, worker=3, host="node7")


CONFIG = {"lr": 0.003, "units": 32, "act": "tanh", "batch": 16}


def test_rows_have_the_documented_columns_and_types(tmp_path):
    problem = make_problem()
    log = ResultsLog(str(tmp_path), problem.space)
    log.t0 = 1000.0
    log.write([result(0, CONFIG, 0.91, metrics={"epochs": 7})])
    log.write([result(1, CONFIG, None, FAILED, error="ValueError: boom\nsecond line")])
    df = load_results(str(tmp_path))
    assert list(df.columns) == [
        "job_id", "p:lr", "p:units", "p:act", "p:batch", "objective", "status", "worker",
        "host", "t_submit", "t_start", "t_end", "handout_latency", "m:epochs", "error",
    ]  # fmt: skip
    row = df.iloc[0]
    assert row["p:lr"] == 0.003 and row["p:units"] == 32 and row["p:act"] == "tanh"
    assert row["objective"] == 0.91 and row["status"] == "DONE" and row["error"] == ""
    assert (row["t_submit"], row["t_start"], row["t_end"]) == (0.0, 1.0, 3.5)
    assert row["worker"] == 3 and row["host"] == "node7" and row["m:epochs"] == 7
    failed = df.iloc[1]
    assert math.isnan(failed["objective"]) and math.isnan(failed["m:epochs"])
    assert failed["error"] == "ValueError: boom second line"
    assert pd.api.types.is_integer_dtype(df["job_id"])


def test_a_new_metric_widens_the_header_without_losing_rows(tmp_path):
    log = ResultsLog(str(tmp_path), make_problem().space)
    log.write([result(0, CONFIG, 0.1, metrics={"a": 1})])
    log.write([result(1, CONFIG, 0.2, metrics={"b": 2})])
    df = load_results(str(tmp_path / "results.csv"))
    assert list(df["m:a"].fillna(-1)) == [1, -1] and list(df["m:b"].fillna(-1)) == [-1, 2]
    assert list(df["objective"]) == [0.1, 0.2]


def test_resume_drops_a_cut_short_line_and_continues(tmp_path):
    space = make_problem().space
    log = ResultsLog(str(tmp_path), space)
    log.t0 = 1000.0
    jobs = [Job(i, {**CONFIG, "units": 10 + i}) for i in range(4)]
    log.journal(jobs)
    log.write([result(0, jobs[0].config, 0.1), result(1, jobs[1].config, 0.2)])
    log.close()
    with open(tmp_path / "results.csv", "a") as f:
        f.write("2,0.003,12,tanh,16,0.3,DO")  # the master was killed mid-write
    with pytest.raises(ResultsError, match="exists and is not to be resumed"):
        ResultsLog(str(tmp_path), space)
    resumed = ResultsLog(str(tmp_path), space, resume=True)
    configs, objectives = resumed.finished()
    assert configs == [jobs[0].config, jobs[1].config] and objectives == [0.1, 0.2]
    assert [j.job_id for j in resumed.unfinished_jobs()] == [2, 3]
    assert resumed.next_job_id == 4
    # new rows continue the clock where the last row ended (t_end 3.5 s)
    assert resumed.t0 == pytest.approx(time.time() - 3.5, abs=1.0)
    resumed.write([result(2, jobs[2].config, 0.3)])
    assert list(load_results(str(tmp_path))["job_id"]) == [0, 1, 2]


def test_resume_refuses_a_file_of_another_space(tmp_path):
    ResultsLog(str(tmp_path), make_problem().space).close()
    other = Problem("q")
    other.add_hyperparameter("y", (0.0, 1.0))
    with pytest.raises(
        ResultsError, match=r"written for hyperparameters \['lr', 'units', 'act', 'batch'\]"
    ):
        ResultsLog(str(tmp_path), other.space, resume=True)
