"""What the launcher says about the job: how many tasks it started, and whether MPI agrees.

A launcher that starts several tasks without giving the MPI library its process-management
interface (``srun`` without ``--mpi=pmi2`` for an MPICH build, or an ``mpiexec`` of another
MPI than the one mpi4py uses) leaves every task in an MPI world of its own: each would run a
whole search, all writing into the same output. :func:`world_size` refuses that before any
work starts.
"""

from __future__ import annotations

import os
import sys

from hpsearch.arguments import EXIT_USAGE
from hpsearch.placement import mpi_world_size

#: Variables that name the number of tasks a launcher started (Slurm's srun, Open MPI,
#: MPICH/Hydra and PMI-2, MVAPICH, PMIx, Cray ALPS).
_TASK_COUNTS = (
    "SLURM_STEP_NUM_TASKS",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "PMIX_SIZE",
    "ALPS_APP_PE_COUNT",
)
#: Variables that name this task's rank; a rank above 0 means there are several tasks.
_TASK_RANKS = (
    "SLURM_PROCID",
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "PMIX_RANK",
    "PALS_RANKID",
    "ALPS_APP_PE",
)
FIX = (
    "launch with srun --mpi=pmi2 under Slurm, otherwise with the mpiexec of the MPI "
    "library mpi4py was built against"
)


def several_tasks(environ: dict[str, str] | None = None) -> str | None:
    """``NAME=value``, the variable by which a launcher says it started more than one task,
    or None."""
    environ = dict(os.environ) if environ is None else environ
    for names, least in ((_TASK_COUNTS, 2), (_TASK_RANKS, 1)):
        for name in names:
            value = environ.get(name, "")
            if value.isdigit() and int(value) >= least:
                return f"{name}={value}"
    return None


def launcher_rank(environ: dict[str, str] | None = None) -> int | None:
    """This task's rank as the launcher numbers it (None when no launcher says)."""
    environ = dict(os.environ) if environ is None else environ
    for name in _TASK_RANKS:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def world_size(prog: str) -> int:
    """Number of ranks in this process's MPI world; 1, with MPI left uninitialised, when no
    launcher started several tasks.

    Exits with status 2 and one line on stderr (from the launcher's first task) when the
    launcher started several tasks but MPI sees a world of one.
    """
    announced = several_tasks()
    if announced is None and mpi_world_size() <= 1:
        return 1
    try:
        from hpsearch.evaluators.mpi import world
    except ImportError as err:
        size, why = 1, f"mpi4py cannot be imported ({err})"
    else:
        size, why = world().size, "MPI sees a world of 1"
    if size > 1 or announced is None:
        return size
    if launcher_rank() in (None, 0):
        print(
            f"{prog}: error: the launcher started several tasks ({announced}) but {why}, so each "
            f"task would run a search of its own; {FIX}",
            file=sys.stderr,
        )
    sys.exit(EXIT_USAGE)
