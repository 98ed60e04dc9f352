"""Ensembles built from real searches whose run functions save validation predictions."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hpsearch as hp
from hpsearch.checkpoints import CHECKPOINTS_DIR
from hpsearch.cli import console_main
from hpsearch.ensemble import build
from hpsearch.predictions import (
    PREDICTIONS_FILE,
    checked_predictions,
    load_predictions,
    save_predictions,
)

# A problem whose configuration names a member; each member saves fixed predictions.
MEMBERS = """
import numpy as np

from hpsearch import Problem
from hpsearch.predictions import save_predictions

TASK = {task!r}
TARGETS = np.array({targets!r})
PREDICTIONS = {predictions!r}
OBJECTIVES = {objectives!r}
OTHER_TARGETS = {other_targets!r}  # members validated on other targets
NO_PREDICTIONS = {no_predictions!r}  # members that save a checkpoint without predictions

problem = Problem("members", direction={direction!r})
problem.add_hyperparameter("member", list(PREDICTIONS))
{score}

def run(config, trial=None):
    member = config["member"]
    if member in NO_PREDICTIONS:
        (trial.checkpoint_dir / "weights.bin").write_bytes(b"w")
    else:
        targets = 1 - TARGETS if member in OTHER_TARGETS else TARGETS
        save_predictions(trial, np.array(PREDICTIONS[member]), targets, TASK)
    return OBJECTIVES[member]
"""


def search(
    directory: Path,
    predictions: dict,
    targets: list,
    objectives: dict,
    task: str = "regression",
    direction: str = "minimize",
    keep_checkpoints: int = 10,
    other_targets: tuple = (),
    no_predictions: tuple = (),
    score: str = "",
) -> Path:
    """Run a grid search over the members of a problem file written from the arguments; return
    its output directory."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "members.py"
    source.write_text(
        MEMBERS.format(
            task=task,
            targets=targets,
            predictions=predictions,
            objectives=objectives,
            direction=direction,
            other_targets=set(other_targets),
            no_predictions=set(no_predictions),
            score=score,
        )
    )
    output = directory / "out"
    hp.optimize(
        str(source),
        method="grid",
        max_evals=len(predictions),
        workers=1,
        output=str(output),
        progress=False,
        seed=0,
        keep_checkpoints=keep_checkpoints,
    )
    return output


N = 24
Y = list(np.linspace(0.0, 1.0, N))
# Regression members: the targets plus a bias. Greedy: a (MSE 1), then b (mean -0.5, MSE
# 0.25), then a again (mean of 1, -2, 1 = 0: exact), a pick with replacement.
BIASES = {"a": 1.0, "b": -2.0, "c": 3.0, "d": 10.0}
REGRESSION = {m: [y + bias for y in Y] for m, bias in BIASES.items()}
# Recorded objectives that rank otherwise than the predictions' errors: top-k must use them.
OBJECTIVES = {"a": 0.3, "b": 0.1, "c": 0.2, "d": 0.4}

# Binary classification, all labels 1: each member is confidently right (0.9) except on its
# own third of the examples, where it is mildly wrong (0.45); any two members together are
# right everywhere.
LABELS = [1] * 30
CLASSIFIERS = {
    name: [0.45 if i // 10 == third else 0.9 for i in range(30)]
    for third, name in enumerate(["p", "q", "r"])
}
CLASSIFIERS["s"] = [0.2] * 30  # wrong everywhere; recorded worst, so its checkpoint is pruned
CLASSIFIERS["t"] = [0.9] * 30  # would be perfect, but saves no predictions
CLASS_OBJECTIVES = {"p": 0.9, "q": 0.8, "r": 0.7, "s": 0.1, "t": 0.95}


@pytest.fixture(scope="module")
def regression(tmp_path_factory) -> Path:
    return search(tmp_path_factory.mktemp("regression"), REGRESSION, Y, OBJECTIVES)


@pytest.fixture(scope="module")
def maximised(tmp_path_factory) -> Path:
    """The regression members in a problem to maximise, scored by minus the largest error."""
    return search(
        tmp_path_factory.mktemp("maximised"),
        REGRESSION,
        Y,
        OBJECTIVES,
        direction="maximize",
        score="problem.score_predictions = lambda y, p: -float(np.max(np.abs(p - y)))",
    )


@pytest.fixture(scope="module")
def classification(tmp_path_factory) -> Path:
    return search(
        tmp_path_factory.mktemp("classification"),
        CLASSIFIERS,
        LABELS,
        CLASS_OBJECTIVES,
        task="classification",
        direction="maximize",
        keep_checkpoints=4,
        no_predictions=("t",),
    )


def job_of(output: Path) -> dict[str, int]:
    """member -> job id in a search's results."""
    df = hp.load_results(str(output))
    return dict(zip(df["p:member"], df["job_id"], strict=True))


def counts_by_member(ensemble, output: Path) -> dict[str, int]:
    names = {job: m for m, job in job_of(output).items()}
    return {names[m.job_id]: m.count for m in ensemble.members}


def test_greedy_picks_with_replacement_and_beats_every_member(regression):
    ensemble = build(regression, k=10, method="greedy")
    assert counts_by_member(ensemble, regression) == {"a": 2, "b": 1}
    assert ensemble.metric.name == "mse" and not ensemble.metric.maximize
    assert ensemble.best_single == pytest.approx(1.0)
    assert ensemble.best_single_job == job_of(regression)["a"]
    assert ensemble.score == pytest.approx(0.0, abs=1e-12)
    weights = dict(zip(counts_by_member(ensemble, regression), ensemble.weights, strict=True))
    assert weights == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    # the same selection on either half: the honest estimate agrees here
    assert ensemble.split_score == pytest.approx(0.0, abs=1e-12)
    assert ensemble.split_best_single == pytest.approx(1.0)


def test_regression_mean_and_spread_weighted_by_counts(regression):
    ensemble = build(regression, k=10)
    np.testing.assert_allclose(ensemble.predictions, Y, atol=1e-12)
    # members at +1 (twice) and -2 around a mean on the targets: sqrt((2 * 1 + 4) / 3)
    assert ensemble.std is not None
    np.testing.assert_allclose(ensemble.std, np.sqrt(2.0))


def test_greedy_stops_at_k_picks(regression):
    ensemble = build(regression, k=2)
    assert counts_by_member(ensemble, regression) == {"a": 1, "b": 1}
    assert ensemble.score == pytest.approx(0.25)
    assert counts_by_member(build(regression, k=1), regression) == {"a": 1}


@pytest.mark.parametrize(
    ("fixture", "expected"), [("regression", ["b", "c"]), ("maximised", ["d", "a"])]
)
def test_top_k_ranks_by_the_recorded_objective_in_the_problems_direction(
    fixture, expected, request
):
    output = request.getfixturevalue(fixture)
    ensemble = build(output, k=2, method="topk")
    assert counts_by_member(ensemble, output) == dict.fromkeys(expected, 1)
    assert [m.objective for m in ensemble.members] == [OBJECTIVES[m] for m in expected]


def test_classification_averages_probabilities(classification):
    ensemble = build(classification, k=5)
    assert ensemble.task == "classification" and ensemble.metric.name == "accuracy"
    assert ensemble.best_single == pytest.approx(2 / 3)
    assert ensemble.score == 1.0
    assert sum(counts_by_member(ensemble, classification).values()) == 2
    assert ensemble.split_score > ensemble.split_best_single
    top = build(classification, k=3, method="topk")
    assert set(counts_by_member(top, classification)) == {"p", "q", "r"}
    np.testing.assert_allclose(top.predictions, [(0.45 + 0.9 + 0.9) / 3] * 30)
    assert top.std is None


def test_only_usable_checkpoints_with_predictions_count(classification, tmp_path):
    ensemble = build(classification)
    # s was pruned by keep_checkpoints=4, t saved no predictions
    assert ensemble.n_candidates == 3
    assert ensemble.skipped == {"no usable checkpoint": 1, "no predictions": 1}
    copy = tmp_path / "out"
    shutil.copytree(classification, copy)
    # a checkpoint written to after it was marked usable no longer counts
    (copy / CHECKPOINTS_DIR / str(job_of(copy)["p"]) / "late.bin").write_bytes(b"x")
    later = build(copy)
    assert later.n_candidates == 2
    assert later.skipped == {"no usable checkpoint": 2, "no predictions": 1}


def test_the_problems_score_predictions_is_the_metric(maximised):
    ensemble = build(maximised, k=10)
    assert ensemble.metric.name == "members objective"
    assert ensemble.metric.maximize  # the problem's direction
    # by largest error, a then b then a is exact too
    assert counts_by_member(ensemble, maximised) == {"a": 2, "b": 1}
    assert ensemble.best_single == pytest.approx(-1.0)
    assert ensemble.score == pytest.approx(0.0, abs=1e-12)


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    try:
        status = console_main(["ensemble", *map(str, args)])
    except SystemExit as exit:  # argparse's errors end the process
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_command_line_writes_the_ensemble(regression, tmp_path, capsys):
    copy = tmp_path / "out"
    shutil.copytree(regression, copy)
    status, out, err = run_cli(copy, "--k", "10", "--method", "greedy", capsys=capsys)
    assert status == 0, err
    assert "greedy ensemble of 2 members (3 picks, k=10) from 4 candidates" in out
    assert "metric: mse" in out and "half split" in out
    written = copy / "ensemble"
    members = pd.read_csv(written / "members.csv")
    assert members.columns.tolist() == [
        "job_id",
        "count",
        "weight",
        "score",
        "objective",
        "p:member",
    ]
    assert members.set_index("p:member")["count"].to_dict() == {"a": 2, "b": 1}
    record = json.loads((written / "ensemble.json").read_text())
    assert record["method"] == "greedy" and record["k"] == 10 and record["metric"] == "mse"
    assert record["n_candidates"] == 4 and record["skipped"] == {}
    assert record["best_single"] == {"job_id": job_of(copy)["a"], "score": 1.0}
    assert set(record["split"]) == {"seed", "score", "best_single"}
    np.testing.assert_allclose(np.load(written / "val_pred.npy"), Y, atol=1e-12)
    np.testing.assert_allclose(np.load(written / "val_std.npy"), np.sqrt(2.0))
    np.testing.assert_allclose(np.load(written / "val_true.npy"), Y)


@pytest.fixture
def mismatched(tmp_path) -> Path:
    return search(tmp_path, REGRESSION, Y, OBJECTIVES, other_targets=("c",))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "is not a directory"),
        ("no results", "holds no results.csv"),
        ("no predictions", "has no job with a usable checkpoint holding validation predictions"),
        ("k 0", "argument --k: must be >= 1, got 0"),
        ("unknown method", "argument --method: invalid choice: 'bagging'"),
        ("targets differ", "differ from those of job"),
        ("output is a file", "is a file, not a directory"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case, message, regression, tmp_path, capsys, request
):
    output = tmp_path / "out"
    args: list[str] = []
    if case == "no results":
        output.mkdir()
    elif case == "no predictions":
        shutil.copytree(regression, output)
        shutil.rmtree(output / CHECKPOINTS_DIR)
    elif case == "targets differ":
        output = request.getfixturevalue("mismatched")
    elif case == "output is a file":
        shutil.copytree(regression, output)
        (tmp_path / "taken").write_text("")
        args = ["--output", str(tmp_path / "taken")]
    elif case != "missing":
        shutil.copytree(regression, output)
        args = ["--k", "0"] if case == "k 0" else ["--method", "bagging"]
    status, out, err = run_cli(output, *args, capsys=capsys)
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and message in err, err
    assert err.startswith("hpsearch ensemble")
    assert not (output / "ensemble").exists()


def test_build_refuses_bad_parameters(regression):
    with pytest.raises(ValueError, match=r"The 'k' parameter of build must be an int >= 1\. Got 0"):
        build(regression, k=0)
    with pytest.raises(ValueError, match="The 'method' parameter of build must be one of"):
        build(regression, method="bagging")


def test_save_predictions_checks_shapes_and_skips_without_a_trial(tmp_path):
    assert save_predictions(None, [0.5], [1]) is None
    with pytest.raises(ValueError, match="same number"):
        checked_predictions([0.1, 0.9], [1], "classification")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        checked_predictions(np.full((2, 3), 1 / 3), [0, 3], "classification")
    with pytest.raises(ValueError, match="same shape"):
        checked_predictions(np.zeros((2, 2)), [0.0, 1.0], "regression")
    with pytest.raises(ValueError, match="'task' parameter must be one of"):
        checked_predictions([0.5], [1], "ranking")
    with pytest.raises(ValueError, match="y_true must be n integer labels"):
        checked_predictions([[0.2, 0.8]], ["a"], "classification")
    with pytest.raises(ValueError, match="y_true must hold finite numbers"):
        checked_predictions([0.5, 0.5], [1.0, np.nan], "regression")
    # a sigmoid's column is kept as the probability of class 1
    assert checked_predictions([[0.2], [0.7]], [0, 1], "classification").y_pred.shape == (2,)
    with pytest.raises(FileNotFoundError):
        load_predictions(tmp_path)
    (tmp_path / PREDICTIONS_FILE).write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match="holds no predictions"):
        load_predictions(tmp_path)


TINY_KERAS = """
import keras
import numpy as np

from hpsearch import Problem
from hpsearch.predictions import save_predictions
from hpsearch.keras import save_checkpoint

problem = Problem("tiny", direction="maximize")
problem.add_hyperparameter("units", (2, 8))

X = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
Y = (X[:, 0] + X[:, 1] > 0).astype("int64")


def run(config, trial=None):
    keras.utils.set_random_seed(config["units"])
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(config["units"], activation="tanh"),
         keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, batch_size=20, verbose=0)
    save_checkpoint(model, trial.checkpoint_dir, 1)
    probabilities = model.predict(X, verbose=0)
    save_predictions(trial, probabilities, Y)
    return float(np.mean(np.argmax(probabilities, axis=1) == Y))
"""


def test_predict_combines_the_members_keras_models(tmp_path):
    pytest.importorskip("keras")
    from hpsearch.evaluators import SerialEvaluator
    from hpsearch.loop import Search
    from hpsearch.results import ResultsLog
    from hpsearch.search import RandomSearch

    source = tmp_path / "tiny.py"
    source.write_text(TINY_KERAS)
    problem = hp.load_problem(str(source))
    assert problem.run is not None
    output = tmp_path / "out"
    log = ResultsLog(str(output), problem.space)
    # in this process, so Keras is imported once
    with SerialEvaluator(problem.run) as evaluator:
        Search(RandomSearch(problem, seed=0), evaluator, log, 3).run()
    log.close()
    ensemble = build(output, k=3, method="topk")
    assert len(ensemble.members) == 3
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")  # the problem's X
    np.testing.assert_allclose(ensemble.predict(x), ensemble.predictions, atol=1e-6)
    mean, std = ensemble.predict(x[:5], return_std=True)
    assert mean.shape == std.shape == (5, 2)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, atol=1e-6)
    assert (std > 0).any()


def test_the_predictions_file_is_where_the_docs_say(regression):
    directory = regression / CHECKPOINTS_DIR / str(job_of(regression)["a"])
    assert (directory / PREDICTIONS_FILE).is_file()
    saved = load_predictions(directory)
    assert saved.task == "regression"
    np.testing.assert_allclose(saved.y_true, Y)


def test_written_files_are_readable_as_the_umask_allows(regression, tmp_path, capsys):
    copy = tmp_path / "out"
    shutil.copytree(regression, copy)
    status, _, err = run_cli(copy, capsys=capsys)
    assert status == 0, err
    expected = 0o666 & ~_umask()
    for path in (copy / "ensemble").iterdir():
        assert path.stat().st_mode & 0o777 == expected, path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_regression_ensemble_replaced_by_a_classification_one_leaves_no_spread(
    regression, classification, tmp_path, capsys
):
    destination = tmp_path / "ensemble"
    assert run_cli(regression, "--output", destination, capsys=capsys)[0] == 0
    assert (destination / "val_std.npy").exists()
    assert run_cli(classification, "--output", destination, capsys=capsys)[0] == 0
    assert not (destination / "val_std.npy").exists()


def test_failed_jobs_are_skipped_as_failed(tmp_path):
    failing = {**REGRESSION, "e": [0.0] * N}
    output = search(tmp_path, failing, Y, {**OBJECTIVES, "e": None})  # a failed run
    ensemble = build(output, k=3)
    assert ensemble.skipped == {"failed": 1}
    assert ensemble.n_candidates == 4


def test_a_metric_undefined_on_a_half_leaves_the_split_estimate_nan(tmp_path):
    # the only example of class 1 is in one half: a metric needing both classes fails there
    targets = [0] * 19 + [1]
    members = {m: [0.2] * 19 + [p] for m, p in (("u", 0.9), ("v", 0.6))}
    score = "problem.score_predictions = lambda y, p: float(np.min(p[y == 1]) - np.max(p[y == 0]))"
    output = search(
        tmp_path, members, targets, {"u": 1.0, "v": 0.5}, task="classification",
        direction="maximize", score=score,
    )  # fmt: skip
    ensemble = build(output, k=3)
    assert ensemble.best_single == pytest.approx(0.7)
    assert math.isnan(ensemble.split_score) and math.isnan(ensemble.split_best_single)
