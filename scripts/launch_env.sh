# Shared set-up for the batch scripts in jobs/; source it, do not run it:
#
#   . scripts/launch_env.sh
#
# Reads (all optional, set them before sourcing):
#   HPSEARCH_ENV      command that activates the environment, e.g. "module load conda;
#                     conda activate hps" (default: source .venv/bin/activate if present)
#   WALLTIME          the allocation's walltime, hh:mm:ss, mm:ss or seconds (default 01:00:00)
#   MARGIN_S          seconds kept free before the walltime (default 300): start-up,
#                     the --grace period and writing the last rows
#   OUTPUT            the search's output directory
# Sets:
#   SEARCH_TIMEOUT    value for --timeout (WALLTIME - MARGIN_S in seconds, at least 60)
#   RESUME_FLAG       "--resume" when $OUTPUT/results.csv exists, empty otherwise
# Works under `set -euo pipefail`.

if [ -n "${HPSEARCH_ENV:-}" ]; then
    eval "$HPSEARCH_ENV"
elif [ -f .venv/bin/activate ]; then
    # shellcheck disable=SC1091
    . .venv/bin/activate
fi

# hh:mm:ss, mm:ss or plain seconds -> seconds
hms_to_seconds() {
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }' <<<"$1"
}

WALLTIME_S=$(hms_to_seconds "${WALLTIME:-01:00:00}")
MARGIN_S=${MARGIN_S:-300}
SEARCH_TIMEOUT=$((WALLTIME_S - MARGIN_S))
if [ "$SEARCH_TIMEOUT" -lt 60 ]; then
    SEARCH_TIMEOUT=60
fi

RESUME_FLAG=""
if [ -f "${OUTPUT:?set OUTPUT before sourcing launch_env.sh}/results.csv" ]; then
    RESUME_FLAG="--resume"          # a later allocation continues the same search
fi
mkdir -p "$OUTPUT"
export SEARCH_TIMEOUT RESUME_FLAG
echo "hpsearch: output=$OUTPUT timeout=${SEARCH_TIMEOUT}s ${RESUME_FLAG:-(new search)}" >&2
