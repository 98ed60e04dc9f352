#!/bin/bash
#SBATCH -N 4
#SBATCH --ntasks-per-node=5
#SBATCH --cpus-per-task=16
#SBATCH --gpus-per-node=4
#SBATCH -t 01:00:00
#SBATCH -q regular
#SBATCH -A MyProject
#SBATCH --signal=TERM@120
##SBATCH -C gpu
# Perlmutter/Frontier-like GPU nodes, Slurm + srun; CPU-only nodes with the same script.
#
# Layout: task 0 is the search master (no GPU), on the first node beside its workers; the
# other tasks are workers, WORKERS_PER_NODE per node (default: --ntasks-per-node - 1), so
# --ntasks-per-node is the workers per node + 1. With GPUs, each worker binds to GPU
# (node-local worker index mod GPUS_PER_NODE) through CUDA_VISIBLE_DEVICES; srun's own
# per-task binding is switched off (--gpu-bind none) so that hpsearch does the binding.
# Tasks, CPUs and GPUs are read from the allocation: keep --ntasks-per-node times
# --cpus-per-task within a node's CPUs.
#
# Perlmutter: enable the -C gpu line (remove one '#'). Frontier (8 GCDs per node, -p batch,
# no -C): --ntasks-per-node=9 --cpus-per-task=6 --gpus-per-node=8; hpsearch sets
# HIP_VISIBLE_DEVICES and ROCR_VISIBLE_DEVICES as well; install the ROCm build of the framework.
# CPU-only nodes: ask for no GPU and the workers you want per node, e.g. 8 workers of 4 cores:
#   sbatch --gpus-per-node=0 --ntasks-per-node=9 --cpus-per-task=4 jobs/slurm_srun.sh
# (or GPUS_PER_NODE=0 WORKERS_PER_NODE=8 in the environment, with matching #SBATCH lines).
#
# Edit: the #SBATCH lines (nodes -N, tasks, CPUs and GPUs per node, walltime -t, QOS -q,
# account -A), PROBLEM, OUTPUT, MAX_EVALS, HPSEARCH_ENV; each variable may also be given in
# the environment at submission.
#
# Submit from any directory (relative PROBLEM and OUTPUT paths start from there):
#   sbatch jobs/slurm_srun.sh
# The same script serves every later allocation: when OUTPUT/results.csv exists it adds
# --resume. Chain the next allocation to start after this one ends, however it ends:
#   jid=$(sbatch --parsable jobs/slurm_srun.sh)
#   sbatch --dependency=afterany:$jid jobs/slurm_srun.sh
# --timeout is the allocation's time left (asked of squeue, so sbatch -t is seen) minus
# MARGIN_S. --signal=TERM@120 sends SIGTERM to the search's tasks 120 s before the time
# limit as a safety net: the master stops like at --timeout, running evaluations may finish
# within GRACE seconds, and the job ends COMPLETED. Keep GRACE below those 120 s. Not
# B:TERM: that signals only this shell, which dies, and the job ends FAILED. After scancel
# (SIGTERM to every task), Slurm kills the tasks KillWait seconds later (30 s by default,
# see `scontrol show config | grep KillWait`), whatever GRACE is.
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$PWD}"

METHOD=${METHOD:-ambs}                  # ambs (Bayesian) or rs (random search)
PROBLEM=${PROBLEM:-problems.digits}     # module name or path/to/problem.py
OUTPUT=${OUTPUT:-runs/slurm}
MAX_EVALS=${MAX_EVALS:-2000}            # in total, across allocations
GRACE=${GRACE:-90}                      # --grace: seconds running evaluations may finish in
WALLTIME=${WALLTIME:-01:00:00}          # used only when squeue cannot tell the time left
SRUN_MPI=${SRUN_MPI:-pmi2}              # srun --mpi: the PMI of mpi4py's MPI (pmix for Open MPI)
NODES=${SLURM_JOB_NUM_NODES:-1}
ALLOCATED=${SLURM_NTASKS:-1}
TASKS_PER_NODE=${SLURM_NTASKS_PER_NODE:-$(((ALLOCATED + NODES - 1) / NODES))}
WORKERS_PER_NODE=${WORKERS_PER_NODE:-$((TASKS_PER_NODE - 1))}
GPUS=${SLURM_GPUS_PER_NODE:-0}          # e.g. 4 or a100:4
GPUS_PER_NODE=${GPUS_PER_NODE:-${GPUS##*:}}
CPUS_PER_TASK=${CPUS_PER_TASK:-${SLURM_CPUS_PER_TASK:-1}}
NTASKS=$((NODES * WORKERS_PER_NODE + 1))
# HPSEARCH_ENV="module load python; conda activate hpsearch"   # or a venv on a shared FS

if [ "$WORKERS_PER_NODE" -lt 1 ] || [ "$NTASKS" -gt "$ALLOCATED" ]; then
    echo "hpsearch: $NODES node(s) with $WORKERS_PER_NODE worker(s) each need $NTASKS tasks," \
        "the allocation has $ALLOCATED: ask for --ntasks-per-node=$((WORKERS_PER_NODE + 1))" \
        "(workers per node + 1)" >&2
    exit 2
fi

# Find hpsearch wherever the job was submitted from: HPSEARCH_ENV activates its environment
# (sbatch also passes on the PATH of the shell that submitted); HPSEARCH_HOME is its
# checkout, by default the one Python imports hpsearch from, else the current directory.
[ -z "${HPSEARCH_ENV:-}" ] || eval "$HPSEARCH_ENV"
: "${HPSEARCH_HOME:=$(python -c 'import hpsearch, os; print(os.path.dirname(os.path.dirname(hpsearch.__file__)))' 2>/dev/null || pwd)}"
if [ ! -f "$HPSEARCH_HOME/scripts/launch_env.sh" ]; then
    echo "hpsearch: no scripts/launch_env.sh in $HPSEARCH_HOME: set HPSEARCH_HOME to the" \
        "hpsearch checkout or HPSEARCH_ENV to the command activating its environment" >&2
    exit 2
fi
MARGIN_S=${MARGIN_S:-300}              # --timeout = time left - MARGIN_S
export WALLTIME MARGIN_S OUTPUT HPSEARCH_HOME
# shellcheck source=scripts/launch_env.sh
. "$HPSEARCH_HOME/scripts/launch_env.sh"

args=(--problem "$PROBLEM" --output "$OUTPUT" --max-evals "$MAX_EVALS"
      --timeout "$SEARCH_TIMEOUT" --grace "$GRACE" --gpus-per-node "$GPUS_PER_NODE"
      --threads-per-worker "$CPUS_PER_TASK" --log-level INFO)
[ -n "$RESUME_FLAG" ] && args+=("$RESUME_FLAG")

layout=(-n "$NTASKS" --ntasks-per-node "$((WORKERS_PER_NODE + 1))" --cpus-per-task "$CPUS_PER_TASK")
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    layout+=(--gpus-per-node "$GPUS_PER_NODE" --gpu-bind none)
fi
echo "hpsearch: $NTASKS tasks: 1 master and $WORKERS_PER_NODE worker(s) per node on $NODES" \
    "node(s), $CPUS_PER_TASK CPU(s) and $GPUS_PER_NODE GPU(s) per node" >&2
srun --mpi="$SRUN_MPI" "${layout[@]}" python -m "hpsearch.$METHOD" "${args[@]}"
