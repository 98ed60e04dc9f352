"""Population-based training through the real search loop: segments that continue their
checkpoints, exploits that copy a top member's checkpoint and values, explore, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hpsearch import Problem, load_problem, load_results
from hpsearch.evaluators import SerialEvaluator
from hpsearch.loop import Search
from hpsearch.results import ResultsLog
from hpsearch.search.pbt import PBT
from hpsearch.simulate import simulate
from tests.killing import kill_when

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPPER = os.path.join(ROOT, "tests", "problem_files", "stepper.py")


def run_pbt(tmp_path, problem, **options) -> tuple[pd.DataFrame, pd.DataFrame, PBT]:
    pbt = PBT(problem, lineage_path=str(tmp_path / "lineage.csv"), **options)
    log = ResultsLog(str(tmp_path), problem.space)
    outcome = Search(pbt, SerialEvaluator(problem.run), log, 10_000).run()
    log.close()
    assert outcome.stopped_by == "exhausted"
    lineage = pd.read_csv(tmp_path / "lineage.csv") if (tmp_path / "lineage.csv").exists() else None
    return load_results(str(tmp_path)), lineage, pbt


def stepper(mutable=None) -> Problem:
    problem = load_problem(STEPPER)
    problem.mutable = mutable
    return problem


def test_every_member_trains_to_the_end_continuing_a_checkpoint_each_segment(tmp_path):
    df, lineage, _ = run_pbt(tmp_path, stepper(["rate"]), population=4, max_steps=10, seed=0)
    df = df.set_index("job_id")
    last = df.groupby("member")["step_end"].max()
    assert sorted(last.index) == [0, 1, 2, 3] and (last == 10).all()  # nobody lost
    assert (df["step_end"] - df["step_start"] <= 2).all()
    for job_id, row in df[df["parent"].notna()].iterrows():
        parent = df.loc[int(row["parent"])]
        # the checkpoint restored holds the parent's weights at the parent's last step
        assert row["step_start"] == parent["step_end"], job_id
        trained = row["step_end"] - row["step_start"]
        assert row["m:weights"] == pytest.approx(parent["m:weights"] + trained * row["p:rate"])
        if parent["member"] == row["member"]:
            assert row["p:rate"] == parent["p:rate"] and row["p:x"] == parent["p:x"]
        else:  # an exploit: the immutable value is copied, the mutable one explored
            assert row["p:x"] == parent["p:x"]
    exploits = df[df["parent"].notna()]
    exploits = exploits[
        exploits["member"].to_numpy() != df.loc[exploits["parent"].astype(int), "member"].to_numpy()
    ]
    assert len(exploits) == len(lineage) > 0
    assert set(lineage["member"]) == set(exploits["member"])


def test_nobody_is_exploited_before_ready_after(tmp_path):
    _, lineage, _ = run_pbt(
        tmp_path, stepper(), population=4, interval=2, max_steps=8, ready_after=6, seed=1
    )
    assert lineage is None or (lineage["step"] >= 6 - 2).all()  # judged at step >= 6


def test_explore_stays_within_the_declared_space():
    problem = Problem("kinds")
    problem.add_hyperparameter("lr", (1e-4, 1e-1, "log-uniform"))
    problem.add_hyperparameter("units", (8, 64))
    problem.add_hyperparameter("act", ["relu", "tanh", "elu"])
    problem.add_hyperparameter("batch", [16, 32, 64, 128], ordinal=True)
    problem.run = lambda config, trial: 0.0
    pbt = PBT(problem, population=2, seed=0, resample=0.0, perturb=[0.5, 3.0])
    config = {"lr": 0.09, "units": 60, "act": "relu", "batch": 32}
    for _ in range(200):
        new = pbt._explore(config)
        assert 1e-4 <= new["lr"] <= 1e-1 and new["lr"] in (0.045, 0.1)  # clipped to the bound
        assert isinstance(new["units"], int) and new["units"] in (30, 64)
        assert new["act"] in ("relu", "tanh", "elu")
        assert new["batch"] in (16, 64)  # a neighbour of 32


def test_an_ordinal_value_moves_to_a_neighbour_of_its_own_choice():
    problem = Problem("ordinal")
    problem.add_hyperparameter("k", [True, 5, 1], ordinal=True)  # True == 1, but not its choice
    problem.run = lambda config, trial: 0.0
    pbt = PBT(problem, population=2, seed=0, resample=0.0)
    moved = [pbt._explore({"k": 1})["k"] for _ in range(50)]
    assert {(type(k), k) for k in moved} == {(int, 5), (int, 1)}


def test_only_mutable_hyperparameters_change_when_exploring():
    problem = stepper(["rate"])
    pbt = PBT(problem, population=2, seed=0, resample=0.5)
    config = {"rate": 0.5, "x": 0.25}
    changed = [pbt._explore(config) for _ in range(50)]
    assert all(c["x"] == 0.25 for c in changed)
    assert len({c["rate"] for c in changed}) > 3


def test_a_member_that_keeps_failing_takes_over_a_member_that_works(tmp_path):
    # the best members (large x) diverge after their first segment
    path = tmp_path / "flaky.py"
    path.write_text(
        "from hpsearch import Problem\n"
        "problem = Problem('flaky', direction='maximize')\n"
        "problem.add_hyperparameter('x', (0.0, 1.0))\n"
        "problem.mutable = []\n"
        "def run(config, trial):\n"
        "    if config['x'] > 0.8 and trial.step >= 2:\n"
        "        raise RuntimeError('diverged')\n"
        "    (trial.checkpoint_dir / 'w').write_text(str(trial.max_steps))\n"
        "    trial.report(trial.max_steps, config['x'])\n"
        "    return config['x']\n"
    )
    problem = load_problem(str(path))
    out = tmp_path / "out"
    df, lineage, _ = run_pbt(out, problem, population=8, max_steps=6, seed=3)
    failed = df[df["status"] == "FAILED"]
    assert len(failed) > 0
    assert (df.groupby("member")["step_end"].max() == 6).all()
    for member in failed["member"].unique():
        rows = df[df["member"] == member].sort_values("job_id")
        assert "FAILED" in rows["status"].tolist()
        assert rows["p:x"].iloc[-1] <= 0.8  # it now trains a copy of a member that works
    assert set(failed["member"]) <= set(lineage["member"])


def test_pbt_runs_in_the_simulator(tmp_path):
    problem = stepper(["rate"])
    pbt = PBT(problem, population=8, max_steps=6, seed=0)
    outcome = simulate(pbt, 4, "fixed:10", str(tmp_path), 10_000, master_time="zero")
    df = load_results(str(tmp_path))
    assert outcome.stopped_by == "exhausted"
    assert (df.groupby("member")["step_end"].max() == 6).all()
    assert outcome.utilisation > 0.9


def test_members_judged_together_exploit_only_the_bottom_quantile(tmp_path):
    # 8 members on 8 simulated workers end every segment at the same moment and are judged one
    # after another, on a value that does not change as they train (their fixed x): the
    # bottom quarter is 2 members, neither a member that copied nor one not yet judged makes
    # room in it for a third
    path = tmp_path / "fixed_value.py"
    path.write_text(
        "from hpsearch import Problem\n"
        "problem = Problem('fixed', direction='minimize')\n"
        "problem.add_hyperparameter('rate', (0.1, 1.0))\n"
        "problem.add_hyperparameter('x', (0.0, 1.0))\n"
        "problem.mutable = ['rate']\n"
        "def run(config, trial):\n"
        "    for step in range(trial.step + 1, trial.max_steps + 1):\n"
        "        (trial.checkpoint_dir / 'step').write_text(str(step))\n"
        "        trial.report(step, config['x'])\n"
        "    return config['x']\n"
    )
    pbt = PBT(load_problem(str(path)), population=8, interval=2, max_steps=12, seed=0)
    simulate(pbt, 8, "fixed:10", str(tmp_path / "out"), 10_000, master_time="zero")
    df = load_results(str(tmp_path / "out")).set_index("job_id")
    continued = df[df["parent"].notna()]
    copied = continued["member"].to_numpy() != df.loc[continued["parent"].astype(int), "member"]
    per_round = continued[copied.to_numpy()].groupby("t_submit").size()  # by decision time
    assert len(per_round) > 1 and (per_round <= 2).all(), per_round
    # the population ends up training copies of its best members
    first = df[df["parent"].isna()].sort_values("objective")
    assert set(df.groupby("member").tail(1)["p:x"]) <= set(first["p:x"].head(3))


def test_members_are_compared_at_a_step_both_have_reached(tmp_path):
    # one worker trains the members in turn, so a member judged after its second segment is
    # two steps ahead of those still to train theirs; the value halves as the steps double,
    # so against their latest values the worst member would look better than it is
    path = tmp_path / "falling.py"
    path.write_text(
        "from hpsearch import Problem\n"
        "problem = Problem('falling', direction='minimize')\n"
        "problem.add_hyperparameter('x', (0.5, 1.0))\n"
        "problem.mutable = ['x']\n"
        "def run(config, trial):\n"
        "    for step in range(trial.step + 1, trial.max_steps + 1):\n"
        "        (trial.checkpoint_dir / 'step').write_text(str(step))\n"
        "        trial.report(step, config['x'] / step)\n"
        "    return config['x'] / trial.max_steps\n"
    )
    for seed in range(3):
        out = tmp_path / str(seed)
        df, _, _ = run_pbt(out, load_problem(str(path)), population=4, max_steps=6, seed=seed)
        first = df[df["parent"].isna()]
        worst = int(first.loc[first["p:x"].idxmax(), "member"])
        rows = df[df["member"] == worst].sort_values("job_id")
        third = rows.iloc[2]  # what it trained after its second segment: a copy of another
        assert df.set_index("job_id").loc[int(third["parent"]), "member"] != worst, seed


def test_pbt_needs_a_run_function_taking_the_trial(tmp_path):
    sleepy = os.path.join(ROOT, "tests", "problem_files", "sleepy.py")
    with pytest.raises(ValueError, match=r"PBT needs a run function that takes the trial"):
        PBT(load_problem(sleepy))
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch.pbt", "--problem", sleepy, "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "PBT needs a run function that takes the trial" in proc.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"population": 0}, "'population' parameter of PBT must be an int >= 1"),
        (
            {"interval": 4, "max_steps": 3},
            "'max_steps' parameter of PBT must be an int >= interval",
        ),
        ({"quantile": 0.7}, "'quantile' parameter of PBT must be a float in"),
        ({"resample": 1.5}, "'resample' parameter of PBT must be a float in"),
        ({"perturb": [0.0]}, "'perturb' parameter of PBT must be factors > 0"),
    ],
)
def test_bad_parameters_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        PBT(stepper(), **options)


def test_the_command_line_writes_segments_and_lineage(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch.pbt", "--problem", STEPPER, "--population", "4",
         "--max-steps", "6", "--workers", "2", "--output", str(out), "--seed", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "stopped by exhausted" in proc.stdout
    df = load_results(str(out))
    assert (df.groupby("member")["step_end"].max() == 6).all()
    record = json.loads((out / "search.json").read_text())
    assert record["method"] == "pbt" and record["parameters"]["population"] == 4
    assert np.isfinite(df["objective"]).all()


@pytest.mark.parametrize("ending", ["timeout", "sigkill"])
def test_a_killed_population_resumes_with_every_member_continuing_its_checkpoint(tmp_path, ending):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "hpsearch.pbt", "--problem", STEPPER, "--population", "4"]
    command += ["--interval", "2", "--max-steps", "12", "--workers", "2", "--output", str(out)]
    command += ["--seed", "0"]
    env = {**os.environ, "HPSEARCH_STEPPER_SLEEP": "0.3"}
    if ending == "timeout":
        first = subprocess.run([*command, "--timeout", "8", "--grace", "0"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert first.returncode == 0, first.stderr
    else:
        results = out / "results.csv"
        kill_when(
            command, env, lambda: results.exists() and len(results.read_text().splitlines()) > 6
        )
    before = load_results(str(out))
    assert (before["step_end"].fillna(0) < 12).any()  # cut short
    with open(out / "submitted.jsonl") as f:
        submitted = {json.loads(line)["job_id"] for line in f}
    second = subprocess.run([*command, "--resume"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=180)  # fmt: skip
    assert second.returncode == 0, second.stderr
    df = load_results(str(out))
    # nothing finished is lost (a column's type may widen once later rows fill it)
    pd.testing.assert_frame_equal(df.head(len(before))[before.columns], before, check_dtype=False)
    after = df.iloc[len(before) :]
    assert not set(after["job_id"]) & set(before.loc[before["status"] == "DONE", "job_id"])
    rerun = set(after["job_id"]) & submitted  # running when the search died: run again
    done = df[df["status"] == "DONE"].set_index("job_id")
    assert sorted(done["member"].unique()) == [0, 1, 2, 3]
    assert (done.groupby("member")["step_end"].max() == 12).all()  # nobody lost
    for job_id, row in done[done["parent"].notna()].iterrows():
        parent = done.loc[int(row["parent"])]  # continued a finished segment's checkpoint
        if job_id in rerun:  # from its own checkpoint when that was usable
            assert row["step_start"] >= parent["step_end"], job_id
        else:
            assert row["step_start"] == parent["step_end"], job_id
        trained = row["step_end"] - parent["step_end"]
        assert row["m:weights"] == pytest.approx(parent["m:weights"] + trained * row["p:rate"])


def test_a_resumed_population_compares_its_members_on_their_whole_curves(tmp_path):
    problem = stepper(["rate"])
    _, _, finished = run_pbt(tmp_path, problem, population=4, interval=2, max_steps=6, seed=0)
    log = ResultsLog(str(tmp_path), problem.space, resume=True)
    try:
        resumed = PBT(problem, population=4, interval=2, max_steps=6, seed=0)
        resumed.restore(log, [])
    finally:
        log.close()
    # every member's curve holds a value at every step its weights trained, copied ones too
    for before, after in zip(finished.curves, resumed.curves, strict=True):
        assert after.steps == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        assert after.values == pytest.approx(before.values)
