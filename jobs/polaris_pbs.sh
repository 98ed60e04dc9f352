#!/bin/bash
#PBS -l select=4:system=polaris
#PBS -l place=scatter
#PBS -l walltime=01:00:00
#PBS -l filesystems=home:eagle
#PBS -q prod
#PBS -A MyProject
# Polaris-like nodes (4 A100 GPUs, 32 cores), PBS Pro + mpiexec (Cray MPICH / PALS).
#
# Layout: 5 ranks per node (--ppn 5), 6 cores each (--depth 6 --cpu-bind depth).
# Rank 0, on the first node, is the search master and uses no GPU. Every other rank is a
# worker; with --gpus-per-node 4 a worker binds to GPU (node-local worker index mod 4), so
# each node runs 4 evaluations at once, one per A100. The fifth slot on the other nodes is
# an extra worker that shares GPU 0 with the first one; set PPN=4 and NRANKS=NODES*4+1 if
# you prefer strictly one worker per GPU (the master then shares the first node's cores).
#
# Edit: the #PBS lines (nodes in select=, walltime, queue -q, project -A, filesystems),
# PROBLEM, OUTPUT, MAX_EVALS, HPSEARCH_ENV (how to activate the Python environment on the
# compute nodes: qsub does not pass on the submitting shell's environment). --timeout is
# the time left (from qstat -f) minus MARGIN_S.
#
# Submit from any directory (relative PROBLEM and OUTPUT paths start from there):
#   qsub jobs/polaris_pbs.sh
# The same script serves every later allocation: when OUTPUT/results.csv exists it adds
# --resume. Chain the next allocation to start after this one ends, however it ends:
#   qsub -W depend=afterany:<this_job_id> jobs/polaris_pbs.sh
set -euo pipefail
cd "${PBS_O_WORKDIR:-$PWD}"

METHOD=${METHOD:-ambs}                  # ambs (Bayesian) or rs (random search)
PROBLEM=${PROBLEM:-problems.digits}     # module name or path/to/problem.py
OUTPUT=${OUTPUT:-runs/polaris}
MAX_EVALS=${MAX_EVALS:-2000}            # in total, across allocations
GRACE=${GRACE:-120}                     # --grace: seconds running evaluations may finish in
WALLTIME=${WALLTIME:-01:00:00}          # used only when qstat cannot tell the time left
GPUS_PER_NODE=4
PPN=${PPN:-5}
DEPTH=${DEPTH:-6}
NODES=$(sort -u "${PBS_NODEFILE:-/dev/null}" | wc -l)
[ "$NODES" -gt 0 ] || NODES=1
NRANKS=${NRANKS:-$((NODES * PPN))}
# HPSEARCH_ENV="module load conda; conda activate base"   # or a venv on a shared FS

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
      --timeout "$SEARCH_TIMEOUT" --grace "$GRACE" --gpus-per-node "$GPUS_PER_NODE"
      --threads-per-worker "$DEPTH" --log-level INFO)
[ -n "$RESUME_FLAG" ] && args+=("$RESUME_FLAG")

mpiexec -n "$NRANKS" --ppn "$PPN" --depth "$DEPTH" --cpu-bind depth \
    python -m "hpsearch.$METHOD" "${args[@]}"
