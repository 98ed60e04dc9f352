"""The report: utilisation, best-so-far curves, every plot and the offline HTML page."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hpsearch import load_problem, load_results
from hpsearch.cli import console_main
from hpsearch.curve_plots import compute_saved, curves
from hpsearch.population_plots import (
    acceptance_ratios,
    exploit_arrows,
    lineage_hyperparameters,
    load_exchanges,
    load_lineage,
    objective_lines,
)
from hpsearch.problem import Problem
from hpsearch.report import (
    best_so_far,
    busy_workers,
    load_runs,
    main,
    parameter_importance,
    summary,
    utilisation,
    workers_figure,
    write_report,
)
from hpsearch.search.random import RandomSearch
from hpsearch.search.rex import ladder_values
from hpsearch.search_record import search_record, write_search
from hpsearch.simulate import main as simulate_main
from hpsearch.simulate import simulate
from hpsearch.testfunctions import make_problem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPPER = os.path.join(ROOT, "tests", "problem_files", "stepper.py")
CURVES = os.path.join(ROOT, "tests", "problem_files", "curves.py")
POPULATION_FIGURES = {"lineage", "acceptance", "replicas"}

PNG = b"\x89PNG\r\n\x1a\n"
HEADER = "job_id,p:lr,p:act,objective,status,worker,host,t_submit,t_start,t_end,error\n"


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (worker, t_start, t_end, status, objective)."""
    return pd.DataFrame(
        [
            {"job_id": i, "worker": w, "host": "h", "t_submit": s, "t_start": s, "t_end": e}
            | {"status": st, "objective": o}
            for i, (w, s, e, st, o) in enumerate(rows)
        ]
    )


def write_csv(path, lines: list[str], header: str = HEADER) -> str:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "results.csv"), "w") as f:
        f.write(header + "".join(line + "\n" for line in lines))
    return str(path)


def test_utilisation_is_busy_worker_seconds_over_workers_times_wall():
    df = frame([(0, 0, 10, "DONE", 1.0), (1, 0, 5, "FAILED", None), (0, 10, 20, "DONE", 2.0)])
    assert utilisation(df) == pytest.approx(25 / 40)
    assert utilisation(df, n_workers=4) == pytest.approx(25 / 80)
    assert utilisation(df, wall=50) == pytest.approx(25 / 100)
    times, counts = busy_workers(df)
    assert times.tolist() == [0, 5, 10, 20]
    assert counts.tolist() == [2, 1, 1, 0]
    assert math.isnan(utilisation(df.iloc[:0]))


def test_best_so_far_skips_failures_and_cancelled_rows_in_end_order():
    df = frame(
        [
            (0, 0, 4, "DONE", 3.0),
            (1, 0, 1, "FAILED", None),
            (2, 0, 2, "DONE", 5.0),
            (1, 1, 3, "CANCELLED", None),
            (1, 3, 6, "DONE", 1.0),
        ]
    )
    low = best_so_far(df)
    assert low["t_end"].tolist() == [1, 2, 4, 6]
    assert low["n"].tolist() == [1, 2, 3, 4]
    assert np.isnan(low["best"].iloc[0])
    assert low["best"].tolist()[1:] == [5.0, 3.0, 1.0]
    assert best_so_far(df, maximize=True)["best"].tolist()[1:] == [5.0, 5.0, 5.0]


def assert_offline_page(files: dict[str, str]) -> str:
    with open(files["html"]) as f:
        page = f.read()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "http://" not in page and "https://" not in page
    images = [p for n, p in files.items() if p.endswith(".png")]
    assert page.count('src="data:image/png;base64,') == len(images)
    for path in images:
        with open(path, "rb") as f:
            data = f.read()
        assert data.startswith(PNG) and len(data) > 5000, path
    return page


def test_report_of_a_simulated_run_has_every_plot(tmp_path):
    problem, _ = make_problem("hartmann6")
    run = str(tmp_path / "rs")
    simulate(RandomSearch(problem, seed=0), 3, "uniform:1,3", run, 30, master_time="zero")
    files = write_report([run], str(tmp_path / "report"))
    expected = {"best_vs_time", "best_vs_evals", "workers", "importance", "parallel", "html"}
    assert expected <= set(files)
    page = assert_offline_page(files)
    # a plain search has no lineage.csv or exchanges.csv: no population figure
    assert not POPULATION_FIGURES & set(files)
    assert "lineage" not in page and "Replica exchange" not in page
    with open(files["best"]) as f:
        best = json.load(f)
    df = pd.read_csv(os.path.join(run, "results.csv"))
    assert best["objective"] == df["objective"].min()
    assert sorted(best["config"]) == [f"x{i}" for i in range(6)]


def test_report_with_failures_and_resumed_rows(tmp_path):
    lines = [
        "0,0.01,relu,0.80,DONE,1,h,0.0,0.1,5.0,",
        "1,0.1,tanh,,FAILED,2,h,0.0,0.1,1.0,ValueError: diverged",
        "2,0.001,relu,,TIMEOUT,2,h,1.0,1.1,9.0,evaluation exceeded --eval-timeout 8 s",
        "3,0.05,tanh,,CANCELLED,1,h,5.0,5.1,7.0,search stopped",
        "3,0.05,tanh,0.90,DONE,1,h,7.5,7.6,12.0,",
        "4,0.02,relu,0.85,DONE,2,h,9.0,9.1,14.0,",
        "5,0.2,tanh,0.60,DONE,1,h,12.0,12.1,15.0,",
        "6,0.005,relu,0.70,DONE,2,h,14.0,14.1,18.0,",
    ]
    run = write_csv(tmp_path / "digits", lines)
    with open(os.path.join(run, "best.json"), "w") as f:
        json.dump({"objective": 0.9, "config": {"lr": 0.05, "act": "tanh"}}, f)
    files = write_report([run], str(tmp_path / "report"))  # direction from best.json
    page = assert_offline_page(files)
    assert "maximised" in page
    with open(files["best"]) as f:
        assert json.load(f) == {
            "objective": 0.9,
            "job_id": 3,
            "config": {"lr": 0.05, "act": "tanh"},
        }
    (run_,) = load_runs([run])
    assert utilisation(run_.df) == pytest.approx(
        (4.9 + 0.9 + 7.9 + 1.9 + 4.4 + 4.9 + 2.9 + 3.9) / (2 * 17.9)
    )
    importance = parameter_importance(run_.df)
    assert set(importance.index) == {"lr", "act"}
    assert importance.sum() == pytest.approx(1.0)
    counts = summary(run_)
    assert [counts[s] for s in ("DONE", "FAILED", "TIMEOUT", "CANCELLED")] == [5, 1, 1, 1]
    top = page.split("Top ")[1]
    assert "0.9" in top and "diverged" not in top


def test_several_seeds_form_one_group_and_multi_objective_gets_a_pareto_front(tmp_path):
    problem, _ = make_problem("branin")
    runs = []
    for name, seed in [("rs-s0", 0), ("rs-s1", 1), ("other", 2)]:
        runs.append(str(tmp_path / name))
        simulate(RandomSearch(problem, seed=seed), 2, "fixed:1", runs[-1], 12, master_time="zero")
    assert [r.group for r in load_runs(runs)] == ["rs", "rs", "other"]
    files = write_report(runs, str(tmp_path / "report"), direction="minimize")
    assert {"workers_0", "workers_1", "workers_2"} <= set(files)
    assert_offline_page(files)

    header = "job_id,p:lr,p:act,objective,status,worker,host,t_submit,t_start,t_end,objective_0,objective_1,error\n"
    points = [(0.9, 10), (0.8, 5), (0.7, 8), (0.6, 2), (0.85, 9), (0.5, 1)]
    lines = [
        f"{i},{0.01 * (i + 1)},relu,{a},DONE,{i % 2},h,{i},{i},{i + 1},{a},{b},"
        for i, (a, b) in enumerate(points)
    ]
    lines.append("6,0.3,tanh,,FAILED,0,h,6,6,7,,,boom")
    multi = write_csv(tmp_path / "mo", lines, header)
    files = write_report([multi], str(tmp_path / "mo-report"), direction="maximize")
    assert "pareto" in files
    assert_offline_page(files)


def test_command_line(tmp_path, capsys):
    problem, _ = make_problem("branin")
    run = str(tmp_path / "run")
    simulate(RandomSearch(problem, seed=0), 2, "fixed:1", run, 8, master_time="zero")
    assert main([run]) == 0
    assert os.path.isfile(os.path.join(run, "report", "report.html"))
    assert console_main(["report", run, "--output", str(tmp_path / "r2"), "--top", "3"]) == 0
    assert os.path.isfile(tmp_path / "r2" / "report.html")
    assert main([str(tmp_path / "missing")]) == 2
    assert "no results file at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        # two searches in one directory, each with its own job 0 and 1
        (
            ["0,0.01,relu,0.8,DONE,1,h,0,0,1,", "1,0.1,tanh,0.6,DONE,2,h,0,0,1,"] * 2,
            r"job ids 0, 1 appear on more than one row",
        ),
        # distinct ids, but three evaluations at once on two workers
        (
            [f"{i},0.01,relu,0.8,DONE,{i % 2},h,0,0,10," for i in range(3)],
            r"evaluations overlap on one worker \(utilisation 1.500 is above 1\)",
        ),
    ],
)
def test_a_file_two_searches_wrote_is_an_error_not_a_figure(tmp_path, capsys, lines, message):
    run = write_csv(tmp_path / "twice", lines)
    assert main([run]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(message, line)


def test_the_worker_axis_has_whole_numbers(tmp_path):
    lines = ["0,0.01,relu,0.8,DONE,0,h,0,0,1,", "1,0.1,tanh,0.6,DONE,1,h,0,1,2,"]
    fig = workers_figure(load_runs([write_csv(tmp_path / "two", lines)])[0])
    ticks = fig.axes[0].get_yticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)


DIGITS_ROWS = [
    "0,0.01,relu,0.80,DONE,1,h,0.0,0.1,5.0,",
    "1,0.1,tanh,0.60,DONE,2,h,0.0,0.1,6.0,",
    "2,0.05,tanh,0.90,DONE,1,h,5.0,5.1,9.0,",
]


def recorded_run(path, direction: str) -> str:
    """A results directory with a search.json saying ``direction``."""
    run = write_csv(path, DIGITS_ROWS)
    problem = Problem("digits", direction=direction)
    problem.add_hyperparameter("lr", (1e-3, 1e-1, "log-uniform"))
    problem.add_hyperparameter("act", ["relu", "tanh"])
    write_search(run, search_record("rs", {}, problem, seed=0))
    return run


def test_report_reads_the_direction_from_search_json(tmp_path, capsys):
    run = recorded_run(tmp_path / "digits", "maximize")
    # a best.json holding the lowest value would say "minimised": search.json comes first
    with open(os.path.join(run, "best.json"), "w") as f:
        json.dump({"objective": 0.6, "config": {"lr": 0.1, "act": "tanh"}, "job_id": 1}, f)
    files = write_report([run], str(tmp_path / "auto"))
    assert "Objective maximised." in assert_offline_page(files)
    with open(files["best"]) as f:
        assert json.load(f) == {
            "objective": 0.9,
            "config": {"lr": 0.05, "act": "tanh"},
            "job_id": 2,
        }
    # the flag still overrides
    assert main([run, "--direction", "minimize", "--output", str(tmp_path / "flag")]) == 0
    with open(tmp_path / "flag" / "report.html") as f:
        assert "Objective minimised." in f.read()
    with open(tmp_path / "flag" / "best.json") as f:
        assert json.load(f)["objective"] == 0.6

    run = recorded_run(tmp_path / "low", "minimize")
    files = write_report([run], str(tmp_path / "low-report"))
    assert "Objective minimised." in assert_offline_page(files)

    with open(os.path.join(run, "search.json"), "w") as f:
        f.write("{ cut short")
    capsys.readouterr()
    assert main([run, "--output", str(tmp_path / "bad")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{run}/search.json cannot be read" in line


def test_report_without_a_success_writes_no_best_json(tmp_path):
    run = write_csv(tmp_path / "failed", ["0,0.1,tanh,,FAILED,1,h,0.0,0.1,1.0,boom"])
    files = write_report([run], str(tmp_path / "report"))
    assert "best" not in files and not os.path.exists(tmp_path / "report" / "best.json")
    assert "no evaluation succeeded" in assert_offline_page(files)


def simulated_population(path, method: str, *options: str) -> str:
    """A population run of the stepper in the simulator; uneven durations make it asynchronous."""
    argv = [method, "--problem", STEPPER, "--workers", "3", "--duration", "uniform:5,15"]
    argv += ["--master-time", "zero"]  # the virtual clock alone: the same run every time
    assert simulate_main([*argv, "--max-steps", "12", "--output", str(path), *options]) == 0
    return str(path)


def test_report_of_a_pbt_run_draws_its_lineage(tmp_path):
    run = simulated_population(tmp_path / "pbt", "pbt", "--population", "6", "--seed", "0")
    files = write_report([run], str(tmp_path / "report"))
    assert "lineage" in files and not {"acceptance", "replicas"} & set(files)
    page = assert_offline_page(files)
    assert "<h2>PBT lineage and hyperparameter schedules (pbt)</h2>" in page

    df, lineage = load_results(run), load_lineage(run)
    assert len(lineage) > 0
    # every exploit is an arrow from the copied job's point to the copier's point before it
    arrows = exploit_arrows(df, lineage)
    assert len(arrows) == len(lineage)
    by_job = df.set_index("job_id")
    copied = by_job.loc[lineage["job_copied"]]
    assert arrows["x_from"].tolist() == lineage["step"].astype(float).tolist()
    assert arrows["x_from"].tolist() == copied["step_end"].astype(float).tolist()
    assert arrows["y_from"].tolist() == copied["objective"].tolist()
    for a in arrows.itertuples():
        own = df[(df["member"] == a.member) & (df["step_end"] == a.x_to)]
        assert a.y_to in own["objective"].tolist()
    # the schedules: the hyperparameters the exploits changed, one line per member
    assert lineage_hyperparameters(df, lineage) == ["rate", "x"]
    lines = objective_lines(df)
    assert sorted(lines) == list(range(6))
    for x, y in lines.values():
        assert np.nanmax(x) == 12 and np.isfinite(y[np.isfinite(x)]).all()


def test_report_of_a_replica_exchange_draws_the_ladder_acceptance(tmp_path):
    run = simulated_population(
        tmp_path / "rex", "rex", "--replicas", "4", "--ladder", "rate=0.1:1:log", "--seed", "0"
    )
    files = write_report([run], str(tmp_path / "report"))
    assert {"acceptance", "replicas"} <= set(files) and "lineage" not in files
    page = assert_offline_page(files)
    assert "Replica exchange: acceptance per adjacent ladder pair (rex)" in page

    # the plotted ratios, counted again straight from exchanges.csv: a ladder pair is its two
    # inverse temperatures (the replica numbers of "pair" follow the swaps)
    raw = pd.read_csv(os.path.join(run, "exchanges.csv"))
    counts: dict[tuple[float, float], list[int]] = {}
    for betas, accepted in zip(raw["betas"], raw["accepted"], strict=True):
        sums = sorted(float(f"{sum(b.values()):.9g}") for b in json.loads(betas))
        counts.setdefault((sums[1], sums[0]), []).append(int(accepted))
    ratios = acceptance_ratios(load_exchanges(run), load_results(run))
    plotted = {
        (float(f"{r.cold:.9g}"), float(f"{r.hot:.9g}")): (r.accepted, r.proposals, r.ratio)
        for r in ratios.itertuples()
    }
    assert plotted == {k: (sum(v), len(v), sum(v) / len(v)) for k, v in counts.items()}
    assert len(set(raw["pair"])) > len(ratios)  # one ladder pair under several replica pairs
    # coldest pair first, labelled by the adjacent ladder values it swaps
    ladder = [f"{v:.3g}" for v in ladder_values(load_problem(STEPPER), "rate", 0.1, 1, True, 4)]
    pairs = [f"rate {a} ↔ {b}" for a, b in itertools.pairwise(ladder)]
    assert ratios["label"].tolist() == [p for p in pairs if p in set(ratios["label"])]
    assert ratios["cold"].is_monotonic_decreasing


def simulated_curves(path, *options: str) -> str:
    """60 trials of the curves problem (x + 1/step, 9 steps) on 16 simulated workers."""
    argv = ["rs", "--problem", CURVES, "--workers", "16", "--duration", "fixed:60"]
    argv += ["--max-evals", "60", "--max-steps", "9", "--master-time", "zero", "--seed", "0"]
    assert simulate_main([*argv, "--output", str(path), *options]) == 0
    return str(path)


def test_report_of_an_asha_run_draws_learning_curves_and_the_steps_saved(tmp_path):
    run = simulated_curves(tmp_path / "asha", "--stopper", "asha")
    files = write_report([run], str(tmp_path / "report"))
    assert "curves" in files
    page = assert_offline_page(files)
    assert "<h2>Learning curves and early stopping (asha)</h2>" in page

    # the numbers, counted again straight from results.csv: every trial starts at step 0 and
    # would have trained to step 9 without stopping
    df = pd.read_csv(os.path.join(run, "results.csv"))
    saved = compute_saved(load_results(run))
    assert 0 < df["stopped"].sum() < len(df) == 60
    assert (saved.trials, saved.stopped) == (len(df), df["stopped"].sum())
    assert saved.steps_run == df["step_end"].sum() < saved.steps_full == len(df) * 9
    assert saved.saved == pytest.approx(1 - df["step_end"].sum() / (len(df) * 9))
    sentence = (
        f"{saved.steps_run:g} of {saved.steps_full:g} steps run, {100 * saved.saved:.1f}% saved"
    )
    assert f"<p>{sentence} (" in page
    # one curve per trial, from its first report to the step it ended at
    lines = curves(pd.read_csv(os.path.join(run, "steps.csv")))
    assert {j: (x[0], x[-1]) for j, (x, _) in lines.items()} == {
        j: (1, end) for j, end in zip(df["job_id"], df["step_end"], strict=True)
    }


def test_report_of_a_run_without_stopping_has_no_learning_curves(tmp_path):
    run = simulated_curves(tmp_path / "plain")
    df = load_results(run)
    # every trial reported its steps and none was stopped
    assert os.path.isfile(os.path.join(run, "steps.csv")) and not df["stopped"].any()
    files = write_report([run], str(tmp_path / "report"))
    assert "curves" not in files and not os.path.exists(tmp_path / "report" / "curves.png")
    page = assert_offline_page(files)
    assert "Learning curves" not in page and "steps run" not in page
    assert compute_saved(df).saved == 0


def test_the_best_configuration_is_one_that_trained_to_its_end(tmp_path):
    # the stepper's value gets worse as fast rates train past the target: stopped trials
    # end with the lowest values of all
    out = tmp_path / "run"
    command = [sys.executable, "-m", "hpsearch.simulate", "rs", "--problem", STEPPER]
    command += ["--workers", "8", "--duration", "fixed:60", "--max-evals", "30", "--seed", "0"]
    command += ["--stopper", "asha", "--max-steps", "9", "--master-time", "zero"]
    command += ["--output", str(out)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    df = load_results(str(out))
    stopped = df["stopped"].astype(bool)
    assert df.loc[stopped, "objective"].min() < df.loc[~stopped, "objective"].min()
    files = write_report([str(out)], str(tmp_path / "report"))
    with open(files["best"]) as f:
        best = json.load(f)
    assert best["job_id"] in set(df.loc[~stopped, "job_id"])
    assert best["objective"] == pytest.approx(df.loc[~stopped, "objective"].min())
