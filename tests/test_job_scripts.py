"""scripts/launch_env.sh, sourced by bash the way the batch scripts in jobs/ source it, outside
any scheduler (tests/test_slurm.py runs a batch script under a real Slurm)."""

import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULER_PREFIXES = ("SLURM_", "PBS_", "COBALT_", "HPSEARCH_")


def source_launch_env(cwd, **variables):
    """Source launch_env.sh from ``cwd`` under ``set -euo pipefail``; return the process and
    what it set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(SCHEDULER_PREFIXES)}
    environ.update(
        PATH=os.pathsep.join([os.path.dirname(sys.executable), environ.get("PATH", "")]),
        PYTHONPATH=ROOT, HPSEARCH_HOME=ROOT, OUTPUT="out", **variables,
    )  # fmt: skip
    script = '. "$HPSEARCH_HOME/scripts/launch_env.sh"; echo "$SEARCH_TIMEOUT ${RESUME_FLAG:--}"'
    proc = subprocess.run(["bash", "-c", f"set -euo pipefail; {script}"], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return proc, proc.stdout.split()


@pytest.mark.parametrize(
    ("walltime", "timeout"),
    [
        ("01:00:00", 3300),
        ("1-00:00:00", 86100),  # Slurm's d-hh:mm:ss
        ("7200", 6900),
        ("05:00", 60),  # at least 60 s ...
        ("01:00", 30),  # ... but never more than half of a short walltime
    ],
)
def test_timeout_from_the_walltime(tmp_path, walltime, timeout):
    proc, (value, resume) = source_launch_env(tmp_path, WALLTIME=walltime)
    assert proc.returncode == 0, proc.stderr
    assert (int(value), resume) == (timeout, "-")
    assert f"from WALLTIME={walltime}" in proc.stderr


def test_time_left_from_cobalt(tmp_path):
    proc, (value, _) = source_launch_env(
        tmp_path, COBALT_ENDTIME=str(int(time.time()) + 1000), WALLTIME="10:00:00"
    )
    assert proc.returncode == 0, proc.stderr
    assert 690 <= int(value) <= 700 and "from the scheduler" in proc.stderr


def test_bad_walltime_exits_2_with_one_line(tmp_path):
    proc, _ = source_launch_env(tmp_path, WALLTIME="soon")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hpsearch: WALLTIME=soon is not [d-]hh:mm:ss, mm:ss or seconds"


def test_resume_flag_once_results_exist(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.csv").write_text("job_id\n")
    proc, (_, resume) = source_launch_env(tmp_path)
    assert proc.returncode == 0 and resume == "--resume", proc.stderr


@pytest.mark.parametrize("script", sorted(os.listdir(os.path.join(ROOT, "jobs"))))
def test_job_scripts_parse(script):
    if script.endswith(".sh"):
        path = os.path.join(ROOT, "jobs", script)
        assert subprocess.run(["bash", "-n", path], capture_output=True).returncode == 0
