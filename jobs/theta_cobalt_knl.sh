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
# Edit: the #COBALT lines (nodes -n, walltime -t, queue -q, project -A), PROBLEM, OUTPUT,
# MAX_EVALS, and HPSEARCH_ENV (how to activate the Python environment on the compute
# nodes). --timeout is the time left (from COBALT_ENDTIME) minus MARGIN_S.
#
# Submit from any directory (relative PROBLEM and OUTPUT paths start from there):
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
GRACE=${GRACE:-120}                     # --grace: seconds running evaluations may finish in
WALLTIME=${WALLTIME:-01:00:00}          # used only when COBALT_ENDTIME is not set
NODES=${COBALT_JOBSIZE:-4}
THREADS=64
# HPSEARCH_ENV="module load conda; conda activate hpsearch"   # or a venv on a shared FS

# Find hpsearch wherever the job was submitted from: HPSEARCH_ENV activates its environment;
# HPSEARCH_HOME is its checkout, by default the one Python imports hpsearch from, else the
# current directory.
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
      --timeout "$SEARCH_TIMEOUT" --grace "$GRACE" --threads-per-worker "$THREADS"
      --gpus-per-node 0 --log-level INFO)
[ -n "$RESUME_FLAG" ] && args+=("$RESUME_FLAG")

aprun -n "$NODES" -N 1 -cc depth -d "$THREADS" -j 1 \
    python -m "hpsearch.$METHOD" "${args[@]}"
