"""The physics problem packages: searched end to end from the command line (quick data), and
the pieces they rely on (shower generator, vectorised replicas) checked on their own."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from hpsearch import load_results, pareto_front

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = {"HPSEARCH_QUICK": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
PROBLEMS = ["digits", "hgcal_pid", "pdf_kfold", "rnn_forecast"]
# (method, problem, extra environment): every problem under random search (hgcal_pid as a
# two-objective problem), and the one with a constraint and conditional widths under AMBS
# (the contract suites hold every method to such spaces).
RUNS = [("rs", p, {"HPSEARCH_HGCAL_MULTI": "1"} if p == "hgcal_pid" else {}) for p in PROBLEMS]
RUNS += [("ambs", "hgcal_pid", {})]
MAX_EVALS = 3


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """Run every search of RUNS, two at a time (each worker pays a framework start-up)."""
    base = tmp_path_factory.mktemp("problems")
    pending = list(RUNS)
    running: list = []
    done = {}
    deadline = time.time() + 240
    while pending or running:
        while pending and len(running) < 2:
            method, name, env = pending.pop(0)
            out = base / f"{method}-{name}"
            cmd = [sys.executable, "-m", f"hpsearch.{method}", "--problem", f"problems.{name}"]
            cmd += ["--max-evals", str(MAX_EVALS), "--workers", "1", "--seed", "0"]
            cmd += ["--output", str(out)]
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**os.environ, **QUICK, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            running.append(((method, name), proc, out))
        key, proc, out = running.pop(0)
        output, _ = proc.communicate(timeout=max(1.0, deadline - time.time()))
        done[key] = (proc.returncode, output, out)
    return done


@pytest.mark.parametrize(("method", "name"), [(m, p) for m, p, _ in RUNS])
def test_problem_is_searched_from_the_command_line(searches, method, name):
    returncode, output, out = searches[(method, name)]
    assert returncode == 0, output
    df = load_results(str(out))
    assert len(df) == MAX_EVALS and (df["status"] == "DONE").all(), df.get("error")
    assert df["objective"].notna().all()
    layers = [c for c in df.columns if c.startswith("p:units_")]
    for _, row in df.iterrows():  # conditional widths: logged only for existing layers
        for column in layers:
            assert pd_isna(row[column]) == (int(column.rsplit("_", 1)[1]) >= row["p:n_layers"])


def pd_isna(value) -> bool:
    return bool(np.isnan(value)) if isinstance(value, float) else value is None


@pytest.mark.parametrize("method", [m for m, p, _ in RUNS if p == "hgcal_pid"])
def test_hgcal_search_honours_the_neuron_budget(searches, method):
    from problems.hgcal_pid.model import NEURON_BUDGET

    *_, out = searches[(method, "hgcal_pid")]
    df = load_results(str(out))
    assert len(df) and (df["m:n_neurons"] <= NEURON_BUDGET).all()


def test_hgcal_two_objective_search_records_both(searches):
    *_, out = searches[("rs", "hgcal_pid")]
    df = load_results(str(out))
    np.testing.assert_allclose(df["objective_1"], -df["m:n_neurons"])
    np.testing.assert_allclose(df["objective_0"], 1 - df["m:pion_misid"])
    front = pareto_front(df)
    assert 1 <= len(front) <= len(df)


def test_pdf_search_logs_every_statistic(searches):
    *_, out = searches[("rs", "pdf_kfold")]
    df = load_results(str(out))
    np.testing.assert_allclose(df["objective"], df["m:mean_chi2"])
    assert (df["m:chi2_of_mean"] > 0).all() and (df["m:mean_abs_chi2_minus_one"] >= 0).all()


def test_shower_generator_separates_electrons_from_pions():
    from problems.hgcal_pid.showers import N_LAYERS, generate, misidentification

    X, y = generate(2000, seed=0)
    assert X.shape == (2000, N_LAYERS) and set(np.unique(y)) == {0, 1}
    depth = np.arange(N_LAYERS)
    energy = np.expm1(X)
    mean_depth = (energy * depth).sum(1) / energy.sum(1)
    # electromagnetic showers peak early; hadronic ones start late and spread
    assert mean_depth[y == 1].mean() + 3 < mean_depth[y == 0].mean()
    assert energy[y == 1].sum(1).mean() > 2 * energy[y == 0].sum(1).mean()
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.75, 0.1])
    labels = np.array([1, 1, 1, 1, 1, 0, 0])
    # keeping 80% of electrons needs threshold 0.6: one pion of two passes
    assert misidentification(scores, labels, efficiency=0.8) == 0.5


def test_vectorised_replicas_equal_separately_trained_ones():
    keras = pytest.importorskip("keras")
    from problems.pdf_kfold.data import dataset, replicas
    from problems.pdf_kfold.replicas import (
        build_replica_model,
        build_single_model,
        replica_sum_mse,
        replica_weights,
    )

    x, data, sigma = dataset(n_points=30)
    targets = replicas(data, sigma, 3).astype("float32")
    weights = (sigma**-2).astype("float32")
    hidden = [5, 4]
    keras.utils.set_random_seed(0)
    ensemble = build_replica_model(3, 2, hidden)
    initial = [replica_weights(ensemble, r) for r in range(3)]
    fit = {"batch_size": len(x), "epochs": 25, "shuffle": False, "verbose": 0}
    ensemble.compile(optimizer=keras.optimizers.Adam(0.01), loss=replica_sum_mse)
    ensemble.fit(x, targets, sample_weight=weights, **fit)
    together = ensemble.predict(x, verbose=0)
    for r in range(3):
        single = build_single_model(2, hidden)
        single.set_weights(initial[r])
        single.compile(optimizer=keras.optimizers.Adam(0.01), loss=replica_sum_mse)
        single.fit(x, targets[:, r : r + 1], sample_weight=weights, **fit)
        assert not np.allclose(single.get_weights()[0], initial[r][0])  # it did train
        alone = single.predict(x, verbose=0)[:, 0]
        np.testing.assert_allclose(together[:, r], alone, rtol=1e-4, atol=1e-5)


def test_topology_grid_walks_the_widths_within_the_neuron_budget(tmp_path):
    from problems.hgcal_pid.model import NEURON_BUDGET

    out = tmp_path / "grid"
    cmd = [sys.executable, "-m", "hpsearch.grid", "--problem", "problems.hgcal_pid.topology"]
    cmd += ["--grid-points", "2", "--max-evals", "10", "--workers", "1", "--no-isolation"]
    proc = subprocess.run(
        [*cmd, "--output", str(out)],
        cwd=ROOT,
        env={**os.environ, **QUICK},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "over 4 configurations" in proc.stderr  # 4 or 128 per layer, two 128s too many
    df = load_results(str(out))
    widths = df[["p:units_0", "p:units_1", "p:units_2"]]
    assert (df["status"] == "DONE").all() and len(df) == 4
    assert set(widths.to_numpy().ravel()) == {4, 128}
    assert (widths.sum(axis=1) <= NEURON_BUDGET).all()
    assert (df["m:n_neurons"] == widths.sum(axis=1)).all()
