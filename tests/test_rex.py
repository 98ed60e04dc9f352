"""Replica exchange through the real search loop: replicas continuing their own checkpoints,
one exchange proposal per round, the acceptance rule's sign, and bad ladders."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from hpsearch import load_problem, load_results
from hpsearch.evaluators import SerialEvaluator
from hpsearch.loop import Search
from hpsearch.results import ResultsLog
from hpsearch.search.rex import ReplicaExchange, ladder_values
from hpsearch.simulate import simulate
from tests.killing import kill_when

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPPER = os.path.join(ROOT, "tests", "problem_files", "stepper.py")


def run_rex(tmp_path, replicas=4, **options):
    problem = load_problem(STEPPER)
    assert problem.run is not None
    ladder = {"rate": ladder_values(problem, "rate", 0.1, 1.0, True, replicas)}
    rex = ReplicaExchange(problem, ladder, exchanges_path=str(tmp_path / "x.csv"), **options)
    log = ResultsLog(str(tmp_path), problem.space)
    outcome = Search(rex, SerialEvaluator(problem.run), log, 10_000).run()
    log.close()
    assert outcome.stopped_by == "exhausted"
    return load_results(str(tmp_path)), pd.read_csv(tmp_path / "x.csv")


def test_replicas_train_side_by_side_swapping_values_not_weights(tmp_path):
    df, exchanges = run_rex(tmp_path, exchange_every=2, burn_in=4, max_steps=10, seed=0)
    df = df.set_index("job_id")
    assert (df.groupby("member")["step_end"].max() == 10).all()
    assert (df["step_end"] - df["step_start"] == 2).all()
    for _, row in df[df["parent"].notna()].iterrows():
        parent = df.loc[int(row["parent"])]
        assert parent["member"] == row["member"]  # weights stay with their replica
        assert row["step_start"] == parent["step_end"]
        trained = row["step_end"] - row["step_start"]
        assert row["m:weights"] == pytest.approx(parent["m:weights"] + trained * row["p:rate"])
    # one proposal per round, from the burn-in on, never at the end
    assert exchanges["step"].tolist() == [4, 6, 8]
    for _, x in exchanges.iterrows():
        m, n = (int(v) for v in x["pair"].split("-"))
        before = df[(df["step_end"] == x["step"])].set_index("member")["p:rate"]
        after = df[(df["step_start"] == x["step"])].set_index("member")["p:rate"]
        if x["accepted"]:
            assert (after[m], after[n]) == (before[n], before[m])
        else:
            assert (after[m], after[n]) == (before[m], before[n])
    assert sorted(df.groupby("step_start")["p:rate"].apply(sorted).iloc[0]) == sorted(
        df.groupby("step_start")["p:rate"].apply(sorted).iloc[-1]
    )  # the ladder's values are only ever permuted


def test_the_lower_loss_moves_to_the_colder_replica_more_often_than_not():
    problem = load_problem(STEPPER)
    moved = 0
    trials = 400
    for seed in range(trials):
        rex = ReplicaExchange(problem, {"rate": [0.1, 0.2]}, seed=seed)
        # replica 0 is colder (rate 0.1: beta 10 > 5); give the hotter replica 1 the lower loss
        rex.replicas[0].value, rex.replicas[1].value = 0.3, 0.2
        rex._propose([0, 1], step=2)
        moved += rex.replicas[1].config["rate"] == 0.1  # the better weights now run cold
    assert moved == trials  # delta > 0: always accepted

    kept = 0
    for seed in range(trials):
        rex = ReplicaExchange(problem, {"rate": [0.1, 0.2]}, seed=seed, coefficient=2.0)
        rex.replicas[0].value, rex.replicas[1].value = 0.2, 0.3  # the colder one is better
        rex._propose([0, 1], step=2)
        kept += rex.replicas[0].config["rate"] == 0.1
    # accepted with probability exp(2 * (10 - 5) * (0.2 - 0.3)) = exp(-1): kept ~ 63%
    assert 0.55 < kept / trials < 0.71


def test_replica_exchange_runs_in_the_simulator(tmp_path):
    problem = load_problem(STEPPER)
    ladder = {"rate": ladder_values(problem, "rate", 0.1, 1.0, False, 8)}
    rex = ReplicaExchange(problem, ladder, max_steps=6, seed=0)
    outcome = simulate(rex, 8, "fixed:10", str(tmp_path), 10_000, master_time="zero")
    df = load_results(str(tmp_path))
    assert outcome.stopped_by == "exhausted"
    assert (df.groupby("member")["step_end"].max() == 6).all()


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ("depth=1:5", "--ladder depth: problem 'stepper' has no such hyperparameter"),
        ("rate=0:1:log", "--ladder rate: a log ladder needs LOW > 0, got 0.0"),
        ("rate=0.1:2", "--ladder rate: LOW and HIGH must lie in [0.1, 1], got 0.1:2"),
        ("rate=0.1", "expected NAME=LOW:HIGH or NAME=LOW:HIGH:log, got 'rate=0.1'"),
    ],
)
def test_a_bad_ladder_exits_2_with_one_line(tmp_path, ladder, message):
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch.rex", "--problem", STEPPER, "--ladder", ladder,
         "--output", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


def test_the_command_line_writes_exchanges(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch.rex", "--problem", STEPPER, "--replicas", "3",
         "--ladder", "rate=0.1:1:log", "--max-steps", "6", "--workers", "3", "--output", str(out),
         "--seed", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "stopped by exhausted" in proc.stdout
    exchanges = pd.read_csv(out / "exchanges.csv")
    assert list(exchanges.columns) == ["step", "pair", "betas", "losses", "probability", "accepted"]
    assert exchanges["step"].tolist() == [2, 4]


@pytest.mark.parametrize("ending", ["timeout", "sigkill"])
def test_a_cut_replica_exchange_resumes_every_replica_from_its_checkpoint(tmp_path, ending):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "hpsearch.rex", "--problem", STEPPER, "--replicas", "3"]
    command += ["--ladder", "rate=0.1:1:log", "--max-steps", "12", "--workers", "2"]
    command += ["--output", str(out), "--seed", "0"]
    env = {**os.environ, "HPSEARCH_STEPPER_SLEEP": "0.3"}
    if ending == "timeout":
        first = subprocess.run([*command, "--timeout", "7", "--grace", "0"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert first.returncode == 0, first.stderr
        assert (load_results(str(out))["status"] == "CANCELLED").any()
    else:
        results = out / "results.csv"
        kill_when(
            command, env, lambda: results.exists() and len(results.read_text().splitlines()) > 4
        )
    before = load_results(str(out))
    second = subprocess.run([*command, "--resume"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=180)  # fmt: skip
    assert second.returncode == 0, second.stderr
    df = load_results(str(out))
    # nothing finished is lost (a column's type may widen once later rows fill it)
    pd.testing.assert_frame_equal(df.head(len(before))[before.columns], before, check_dtype=False)
    done = df[df["status"] == "DONE"].set_index("job_id")
    assert done.index.is_unique  # no segment trained twice to its end
    assert (done.groupby("member")["step_end"].max() == 12).all()
    for _, row in done[done["parent"].notna()].iterrows():
        parent = done.loc[int(row["parent"])]
        assert parent["member"] == row["member"]
        trained = row["step_end"] - parent["step_end"]
        assert row["m:weights"] == pytest.approx(parent["m:weights"] + trained * row["p:rate"])


def test_a_replica_that_keeps_failing_continues_the_best_replicas_weights(tmp_path):
    # replica 1's segment from step 2 fails twice: it takes over the weights of the best
    # replica that ended the round, and the ladder keeps all its rungs to the end
    path = tmp_path / "flaky.py"
    path.write_text(
        "from pathlib import Path\n"
        "from hpsearch import Problem\n"
        "problem = Problem('flaky', direction='minimize')\n"
        "problem.add_hyperparameter('rate', (0.1, 1.0))\n"
        f"FAILED = Path({str(tmp_path / 'failures')!r})\n"
        "def run(config, trial):\n"
        "    if trial.member == 1 and trial.step == 2 and len(FAILED.read_text()) < 2:\n"
        "        FAILED.write_text(FAILED.read_text() + 'x')\n"
        "        raise RuntimeError('diverged')\n"
        "    (trial.checkpoint_dir / 'w').write_text(str(trial.max_steps))\n"
        "    trial.report(trial.max_steps, config['rate'] / trial.max_steps)\n"
        "    return config['rate'] / trial.max_steps\n"
    )
    (tmp_path / "failures").write_text("")
    problem = load_problem(str(path))
    ladder = {"rate": ladder_values(problem, "rate", 0.1, 1.0, True, 3)}
    rex = ReplicaExchange(problem, ladder, exchange_every=2, max_steps=8, seed=0)
    out = tmp_path / "out"
    log = ResultsLog(str(out), problem.space)
    outcome = Search(rex, SerialEvaluator(problem.run), log, 10_000).run()
    log.close()
    assert outcome.stopped_by == "exhausted"
    df = load_results(str(out))
    assert df.loc[df["status"] == "FAILED", "member"].tolist() == [1, 1]
    done = df[df["status"] == "DONE"].set_index("job_id")
    assert (done.groupby("member")["step_end"].max() == 8).all()  # the ladder kept every rung
    after = done[(done["member"] == 1) & (done["step_start"] >= 2)].sort_index().iloc[0]
    parent = done.loc[int(after["parent"])]
    assert parent["member"] != 1 and after["step_start"] == parent["step_end"] == 4
