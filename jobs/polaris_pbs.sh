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
# WALLTIME below (same as walltime=), PROBLEM, OUTPUT, MAX_EVALS, HPSEARCH_ENV.
#
# Submit from the repository (or the directory holding your problem module):
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
WALLTIME=${WALLTIME:-01:00:00}          # keep equal to walltime= above
GPUS_PER_NODE=4
PPN=${PPN:-5}
DEPTH=${DEPTH:-6}
NODES=$(sort -u "${PBS_NODEFILE:-/dev/null}" | wc -l)
[ "$NODES" -gt 0 ] || NODES=1
NRANKS=${NRANKS:-$((NODES * PPN))}
# HPSEARCH_ENV="module load conda; conda activate base"   # or a venv on a shared FS

MARGIN_S=${MARGIN_S:-300}              # --timeout = WALLTIME - MARGIN_S
export WALLTIME MARGIN_S OUTPUT
# shellcheck source=scripts/launch_env.sh
. scripts/launch_env.sh

args=(--problem "$PROBLEM" --output "$OUTPUT" --max-evals "$MAX_EVALS"
      --timeout "$SEARCH_TIMEOUT" --grace 120 --gpus-per-node "$GPUS_PER_NODE"
      --threads-per-worker "$DEPTH" --log-level INFO)
[ -n "$RESUME_FLAG" ] && args+=("$RESUME_FLAG")

mpiexec -n "$NRANKS" --ppn "$PPN" --depth "$DEPTH" --cpu-bind depth \
    python -m "hpsearch.$METHOD" "${args[@]}"
