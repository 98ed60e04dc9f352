"""Time training N replicas as one vectorised Keras model against a loop over N models.

Both train the same networks (the pdf_kfold problem's data and default architecture) for the
same number of full-batch Adam steps; the loop builds, compiles and fits one ordinary model per
replica, as a fit script without the replica axis would. Prints a Markdown table.

    .venv/bin/python scripts/bench_replicas.py --replicas 20 --steps 500
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras
import numpy as np

from problems.pdf_kfold.data import dataset, replicas
from problems.pdf_kfold.replicas import (
    build_replica_model,
    build_single_model,
    replica_sum_mse,
)

HIDDEN = [25, 20]
STEPS_PER_EPOCH = 100


def _fit(model, x, targets, weights, steps: int) -> None:
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=replica_sum_mse)
    model.fit(
        np.tile(x, (STEPS_PER_EPOCH, 1)),
        np.tile(targets, (STEPS_PER_EPOCH, 1)),
        sample_weight=np.tile(weights, STEPS_PER_EPOCH),
        batch_size=len(x),
        epochs=max(1, steps // STEPS_PER_EPOCH),
        shuffle=False,
        verbose=0,
    )


def vectorised(x, targets, weights, steps: int) -> float:
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    _fit(build_replica_model(targets.shape[1], x.shape[1], HIDDEN), x, targets, weights, steps)
    return time.perf_counter() - t0


def loop(x, targets, weights, steps: int) -> float:
    t0 = time.perf_counter()
    for r in range(targets.shape[1]):
        keras.utils.set_random_seed(r)
        _fit(build_single_model(x.shape[1], HIDDEN), x, targets[:, r : r + 1], weights, steps)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    x, data, sigma = dataset()
    targets = replicas(data, sigma, args.replicas).astype("float32")
    weights = (sigma**-2).astype("float32")
    vectorised(x, targets[:, :2], weights, STEPS_PER_EPOCH)  # warm-up: framework start-up
    load_before = os.getloadavg()[0]
    t_vec = vectorised(x, targets, weights, args.steps)
    t_loop = loop(x, targets, weights, args.steps)
    load_after = os.getloadavg()[0]
    print(
        f"date {time.strftime('%Y-%m-%d')}, {platform.machine()}, Python {platform.python_version()}, "
        f"keras {keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} cores"
    )
    print(f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}")
    print()
    print("| replicas | steps | vectorised (s) | loop (s) | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {args.replicas} | {args.steps} | {t_vec:.1f} | {t_loop:.1f} | {t_loop / t_vec:.1f}x |"
    )


if __name__ == "__main__":
    main()
