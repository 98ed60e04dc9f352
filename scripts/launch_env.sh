# Shared set-up for the batch scripts in jobs/; source it, do not run it. The scripts find
# it wherever they were submitted from:
#
#   [ -z "${HPSEARCH_ENV:-}" ] || eval "$HPSEARCH_ENV"
#   : "${HPSEARCH_HOME:=$(python -c '...print the checkout hpsearch is imported from...')}"
#   . "$HPSEARCH_HOME/scripts/launch_env.sh"
#
# Reads (all optional, set them before sourcing):
#   HPSEARCH_HOME     the hpsearch checkout (default: the current directory)
#   WALLTIME          the allocation's walltime, [d-]hh:mm:ss, mm:ss or seconds, used when
#                     the scheduler cannot be asked for the time left (default 01:00:00)
#   MARGIN_S          seconds kept free before the end of the allocation (default 300):
#                     start-up, the --grace period and writing the last rows
#   OUTPUT            the search's output directory
# Sets:
#   SEARCH_TIMEOUT    value for --timeout: the allocation's time left - MARGIN_S, at least
#                     60 s but never more than half of the time left
#   RESUME_FLAG       "--resume" when $OUTPUT/results.csv exists, empty otherwise
# Activates $HPSEARCH_HOME/.venv when the Python on the PATH cannot import hpsearch, and exits
# with status 2 when none can. Works under `set -euo pipefail`.

HPSEARCH_HOME=${HPSEARCH_HOME:-$PWD}
if ! python -c "import hpsearch" 2>/dev/null; then
    if [ -f "$HPSEARCH_HOME/.venv/bin/activate" ]; then
        # shellcheck disable=SC1091
        . "$HPSEARCH_HOME/.venv/bin/activate"
    fi
    if ! python -c "import hpsearch" 2>/dev/null; then
        echo "hpsearch: no python on the PATH imports hpsearch; set HPSEARCH_ENV to the" \
            "command that activates its environment" >&2
        exit 2
    fi
fi

# [d-]hh:mm:ss, mm:ss or plain seconds -> seconds; empty for anything else (UNLIMITED, ...)
duration_to_seconds() {
    awk -F: '/^([0-9]+-)?[0-9]+(:[0-9]+)*$/ {
        days = 0
        if (index($1, "-")) { split($1, d, "-"); days = d[1]; $1 = d[2] }
        s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i
        print days * 86400 + s }' <<<"$1"
}

# Seconds left in this allocation as the scheduler reports it; empty when it cannot say.
allocation_seconds_left() {
    if [ -n "${SLURM_JOB_ID:-}" ] && command -v squeue >/dev/null; then
        duration_to_seconds "$(squeue -h -j "$SLURM_JOB_ID" -o %L 2>/dev/null | head -n 1)"
    elif [ -n "${PBS_JOBID:-}" ] && command -v qstat >/dev/null; then
        local limit used
        limit=$(qstat -f "$PBS_JOBID" 2>/dev/null | awk '/Resource_List.walltime =/ { print $3 }')
        used=$(qstat -f "$PBS_JOBID" 2>/dev/null | awk '/resources_used.walltime =/ { print $3 }')
        limit=$(duration_to_seconds "$limit")
        [ -z "$limit" ] || echo $((limit - $(duration_to_seconds "${used:-0}")))
    elif [ -n "${COBALT_ENDTIME:-}" ]; then
        echo $((COBALT_ENDTIME - $(date +%s)))
    fi
}

LEFT_S=$(allocation_seconds_left || true)
WALLTIME_FROM="the scheduler"
if [ -z "$LEFT_S" ]; then
    LEFT_S=$(duration_to_seconds "${WALLTIME:-01:00:00}")
    WALLTIME_FROM="WALLTIME=${WALLTIME:-01:00:00}"
fi
if [ -z "$LEFT_S" ]; then
    echo "hpsearch: WALLTIME=$WALLTIME is not [d-]hh:mm:ss, mm:ss or seconds" >&2
    exit 2
fi
MARGIN_S=${MARGIN_S:-300}
SEARCH_TIMEOUT=$((LEFT_S - MARGIN_S))
if [ "$SEARCH_TIMEOUT" -lt 60 ]; then
    SEARCH_TIMEOUT=$((LEFT_S / 2 < 60 ? LEFT_S / 2 : 60))
fi
if [ "$SEARCH_TIMEOUT" -lt 1 ]; then
    SEARCH_TIMEOUT=1
fi

RESUME_FLAG=""
if [ -f "${OUTPUT:?set OUTPUT before sourcing launch_env.sh}/results.csv" ]; then
    RESUME_FLAG="--resume"          # a later allocation continues the same search
fi
mkdir -p "$OUTPUT"
export SEARCH_TIMEOUT RESUME_FLAG
echo "hpsearch: output=$OUTPUT timeout=${SEARCH_TIMEOUT}s (${LEFT_S}s left, from" \
    "$WALLTIME_FROM) ${RESUME_FLAG:-(new search)}" >&2
