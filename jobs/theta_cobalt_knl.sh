#!/bin/bash
#COBALT -n 4
#COBALT -t 01:00:00
#COBALT -q default
#COBALT -A MyProject
#COBALT --attrs mcdram=cache:numa=quad
# Theta-like Cray XC40 KNL nodes, Cobalt + aprun.
#
# Layout: one rank per node, 64 OpenMP threads each (aprun -N 1 -d 64 -cc depth -j 1).
# Rank 0 is the search master and gets the first node to itself; the other NODES-1 ranks
# are workers, each evaluating one configuration at a time with --threads-per-worker 64
# (OMP_NUM_THREADS, MKL_NUM_THREADS, TF_NUM_INTRAOP_THREADS). Ask for one node more than
# the number of concurrent evaluations you want.
#
# Edit: the #COBALT lines (nodes -n, walltime -t, queue -q, project -A), WALLTIME below
# (same value as -t), PROBLEM, OUTPUT, MAX_EVALS, and HPSEARCH_ENV (how to activate the
# Python environment on the compute nodes).
#
# Submit from the repository (or the directory holding your problem module):
#   qsub jobs/theta_cobalt_knl.sh
# The same script serves every later allocation: when OUTPUT/results.csv exists it adds
# --resume, finished rows are kept, evaluations cut off by the last walltime run again.
# Chain the next allocation so it starts when this one ends, however it ends:
#   qsub --dependencies <this_job_id> jobs/theta_cobalt_knl.sh
set -euo pipefail
cd "${COBALT_WORKDIR:-$PWD}"

METHOD=${METHOD:-ambs}                  # ambs (Bayesian) or rs (random search)
PROBLEM=${PROBLEM:-problems.digits}     # module name or path/to/problem.py
OUTPUT=${OUTPUT:-runs/theta}
MAX_EVALS=${MAX_EVALS:-2000}            # in total, across allocations
WALLTIME=${WALLTIME:-01:00:00}          # keep equal to #COBALT -t
NODES=${COBALT_JOBSIZE:-4}
THREADS=64
# HPSEARCH_ENV="module load conda; conda activate hpsearch"   # or a venv on a shared FS

MARGIN_S=${MARGIN_S:-300}              # --timeout = WALLTIME - MARGIN_S
export WALLTIME MARGIN_S OUTPUT
# shellcheck source=scripts/launch_env.sh
. scripts/launch_env.sh

args=(--problem "$PROBLEM" --output "$OUTPUT" --max-evals "$MAX_EVALS"
      --timeout "$SEARCH_TIMEOUT" --grace 120 --threads-per-worker "$THREADS"
      --gpus-per-node 0 --log-level INFO)
[ -n "$RESUME_FLAG" ] && args+=("$RESUME_FLAG")

aprun -n "$NODES" -N 1 -cc depth -d "$THREADS" -j 1 \
    python -m "hpsearch.$METHOD" "${args[@]}"
