#!/bin/bash
#SBATCH -N 4
#SBATCH -t 01:00:00
#SBATCH -C gpu
#SBATCH -q regular
#SBATCH -A MyProject
#SBATCH --signal=B:TERM@120
# Perlmutter/Frontier-like GPU nodes, Slurm + srun.
#
# Layout: NODES*4+1 tasks. Task 0 is the search master (no GPU); the others are workers,
# 4 per node, and with --gpus-per-node 4 each binds to GPU (node-local worker index mod 4)
# through CUDA_VISIBLE_DEVICES. srun's own per-task GPU binding is switched off
# (--gpu-bind none) so that hpsearch does the binding. The node holding the master runs
# it beside its 4 workers (Slurm may place tasks with --ntasks-per-node up to 5).
#
# Frontier (AMD MI250X, 8 GCDs per node, -C nothing, -p batch): set GPUS_PER_NODE=8 and
# CPUS_PER_TASK=7; hpsearch sets HIP_VISIBLE_DEVICES and ROCR_VISIBLE_DEVICES as well,
# and install the ROCm build of the framework.
#
# Edit: the #SBATCH lines (nodes -N, walltime -t, constraint -C, QOS -q, account -A),
# WALLTIME below (same as -t), PROBLEM, OUTPUT, MAX_EVALS, HPSEARCH_ENV.
#
# Submit from the repository (or the directory holding your problem module):
#   sbatch jobs/slurm_srun.sh
# The same script serves every later allocation: when OUTPUT/results.csv exists it adds
# --resume. Chain the next allocation to start after this one ends, however it ends:
#   jid=$(sbatch --parsable jobs/slurm_srun.sh)
#   sbatch --dependency=afterany:$jid jobs/slurm_srun.sh
# --signal=B:TERM@120 sends SIGTERM 120 s before the walltime as a safety net; the master
# stops like at --timeout and exits 0.
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$PWD}"

METHOD=${METHOD:-ambs}                  # ambs (Bayesian) or rs (random search)
PROBLEM=${PROBLEM:-problems.digits}     # module name or path/to/problem.py
OUTPUT=${OUTPUT:-runs/slurm}
MAX_EVALS=${MAX_EVALS:-2000}            # in total, across allocations
WALLTIME=${WALLTIME:-01:00:00}          # keep equal to -t above
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-16}
NODES=${SLURM_JOB_NUM_NODES:-1}
NTASKS=$((NODES * GPUS_PER_NODE + 1))
# HPSEARCH_ENV="module load python; conda activate hpsearch"   # or a venv on a shared FS

MARGIN_S=${MARGIN_S:-300}              # --timeout = WALLTIME - MARGIN_S
export WALLTIME MARGIN_S OUTPUT
# shellcheck source=scripts/launch_env.sh
. scripts/launch_env.sh

args=(--problem "$PROBLEM" --output "$OUTPUT" --max-evals "$MAX_EVALS"
      --timeout "$SEARCH_TIMEOUT" --grace 90 --gpus-per-node "$GPUS_PER_NODE"
      --threads-per-worker "$CPUS_PER_TASK" --log-level INFO)
[ -n "$RESUME_FLAG" ] && args+=("$RESUME_FLAG")

srun -n "$NTASKS" --ntasks-per-node "$((GPUS_PER_NODE + 1))" --gpus-per-node "$GPUS_PER_NODE" \
    --cpus-per-task "$CPUS_PER_TASK" --gpu-bind none \
    python -m "hpsearch.$METHOD" "${args[@]}"
