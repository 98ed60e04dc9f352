"""Where an evaluation runs: launcher detection, GPU binding and thread counts, as environment.

Everything here is decided before a deep-learning framework is imported (frameworks read
these variables once, at import), so it is expressed as environment variables that a worker
sets for itself and passes to its evaluation child.
"""

from __future__ import annotations

import os
import shutil
import subprocess

#: Variables that launchers set to the size of the MPI job (MPICH/Hydra and PMI-2 srun,
#: Open MPI, MVAPICH, PMIx, Cray ALPS, Intel MPI).
_SIZE_VARIABLES = (
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "PMIX_SIZE",
    "ALPS_APP_PE_COUNT",
    "MPI_LOCALNRANKS",
)
#: Variables frameworks read to pick GPUs: NVIDIA, then AMD (HIP and ROCm runtimes).
GPU_VARIABLES = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")


def mpi_world_size(environ: dict[str, str] | None = None) -> int:
    """Number of ranks of the MPI job this process belongs to, read from the launcher's
    environment (1 when not launched by an MPI launcher). Never initialises MPI."""
    environ = dict(os.environ) if environ is None else environ
    for name in _SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def detect_gpus(environ: dict[str, str] | None = None) -> int:
    """GPUs visible on this node: from a ``*_VISIBLE_DEVICES`` list, else ``nvidia-smi -L``."""
    environ = dict(os.environ) if environ is None else environ
    for name in GPU_VARIABLES:
        value = environ.get(name)
        if value is not None:
            return len([d for d in value.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(
                ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return 0
        return sum(line.startswith("GPU ") for line in listing.splitlines())
    return 0


def thread_environment(threads: int) -> dict[str, str]:
    """Variables that cap an evaluation's threads (OpenMP, BLAS, TensorFlow, PyTorch)."""
    value = str(threads)
    return {
        "OMP_NUM_THREADS": value,
        "MKL_NUM_THREADS": value,
        "OPENBLAS_NUM_THREADS": value,
        "TF_NUM_INTRAOP_THREADS": value,
        "TF_NUM_INTEROP_THREADS": str(min(threads, 2)),
    }


def gpu_environment(local_index: int, gpus_per_node: int) -> dict[str, str]:
    """Bind a worker to one GPU by its node-local index (empty when there are no GPUs)."""
    if gpus_per_node <= 0:
        return {}
    device = str(local_index % gpus_per_node)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:  # the scheduler already restricted the node's devices: index into its list
        devices = [d.strip() for d in visible.split(",") if d.strip()]
        if devices:
            device = devices[local_index % len(devices)]
    return {name: device for name in GPU_VARIABLES}


def worker_environment(
    local_index: int, gpus_per_node: int | None, threads_per_worker: int | None
) -> dict[str, str]:
    """Environment for the evaluations of the worker with node-local index ``local_index``.

    ``gpus_per_node=None`` detects the GPUs; 0 binds none. ``threads_per_worker=None``
    leaves thread counts to the framework.
    """
    environ: dict[str, str] = {}
    gpus = detect_gpus() if gpus_per_node is None else gpus_per_node
    environ.update(gpu_environment(local_index, gpus))
    if threads_per_worker:
        environ.update(thread_environment(threads_per_worker))
    return environ
