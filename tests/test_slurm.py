"""jobs/slurm_srun.sh under a real one-node Slurm, started here in a temporary directory.

Installs nothing: it runs where ``slurmctld``, ``slurmd`` and ``munged`` are installed (``make
test-slurm`` installs them) and the tests run as root, as slurmd must. It starts a private
munged and the Slurm daemons with their own configuration, ports and state, submits the batch
script as a user would (from a directory that is not the checkout) and stops everything it
started, whatever happens.
"""

import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from hpsearch import load_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "jobs", "slurm_srun.sh")
SLEEPY = os.path.join(ROOT, "tests", "problem_files", "sleepy.py")
DAEMON_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
DAEMONS = ("slurmctld", "slurmd", "munged")
MISSING = [name for name in DAEMONS if shutil.which(name, path=DAEMON_PATH) is None]
CPUS = 8  # declared to Slurm whatever the machine has: the tasks mostly sleep
FINISHED = ("DONE", "FAILED", "TIMEOUT")

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(bool(MISSING), reason=f"Slurm is not installed (no {', '.join(MISSING)})"),
    pytest.mark.skipif(os.geteuid() != 0, reason="slurmd must run as root to start job steps"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


class Slurm:
    """A munged, a slurmctld and a slurmd of their own in ``home``; :meth:`stop` ends them."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.daemons: list[subprocess.Popen] = []
        self.jobs: list[str] = []
        # SLURM_* of an enclosing allocation would leak into sbatch and srun
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PMI"))}
        self.env.update(SLURM_CONF=os.path.join(home, "slurm.conf"), PATH=DAEMON_PATH)

    def start(self) -> None:
        munge = os.path.join(self.home, "munge")
        os.makedirs(munge, mode=0o755)  # munged wants its socket's directory open to all
        os.chmod(self.home, 0o755)
        key = os.path.join(munge, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        socket_path = os.path.join(munge, "socket")
        self.spawn("munged", "-F", f"--socket={socket_path}", f"--key-file={key}",
                   f"--log-file={munge}/log", f"--pid-file={munge}/pid",
                   f"--seed-file={munge}/seed")  # fmt: skip
        wait_until(lambda: os.path.exists(socket_path), 30, "munged's socket")
        self.write_config(socket_path)
        self.spawn("slurmctld", "-D", "-i")
        self.spawn("slurmd", "-D")
        wait_until(self.node_idle, 60, "the node to be idle (see slurmctld.log, slurmd.log)")

    def write_config(self, munge_socket: str) -> None:
        node = socket.gethostname().split(".")[0]
        user = pwd.getpwuid(os.geteuid()).pw_name
        state, spool = os.path.join(self.home, "state"), os.path.join(self.home, "spool")
        os.makedirs(state)
        os.makedirs(spool)
        lines = [
            "ClusterName=hpstest",
            f"SlurmctldHost={node}(127.0.0.1)",
            f"SlurmUser={user}",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "AuthType=auth/munge",
            "CryptoType=crypto/munge",
            f"AuthInfo=socket={munge_socket}",
            f"StateSaveLocation={state}",
            f"SlurmdSpoolDir={spool}",
            f"SlurmctldPidFile={self.home}/slurmctld.pid",
            f"SlurmdPidFile={self.home}/slurmd.pid",
            f"SlurmctldLogFile={self.home}/slurmctld.log",
            f"SlurmdLogFile={self.home}/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=5",  # cancelled workers, which ignore SIGTERM, are killed soon
            # MPICH names its shared memory after the PMI job id: ids that repeat from one
            # run to the next would meet the segments a killed run left in /dev/shm
            f"FirstJobId={random.randrange(10_000, 50_000_000)}",
            "SlurmdParameters=config_overrides",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MailProg=/bin/true",
            f"NodeName={node} NodeAddr=127.0.0.1 CPUs={CPUS} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        with open(self.env["SLURM_CONF"], "w") as f:
            f.write("\n".join(lines) + "\n")

    def log_tail(self) -> str:
        """The last line of each daemon's log, to say why it did not start."""
        tails = []
        for name in ("munged.out", "slurmctld.log", "slurmd.log"):
            path = os.path.join(self.home, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    lines = f.read().strip().splitlines()
                tails.append(f"{name}: {lines[-1] if lines else '(empty)'}")
        return "; ".join(tails)

    def spawn(self, name: str, *args: str) -> None:
        log = open(os.path.join(self.home, f"{name}.out"), "wb")  # noqa: SIM115
        self.daemons.append(
            subprocess.Popen([shutil.which(name, path=DAEMON_PATH), *args], env=self.env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )  # fmt: skip
        log.close()

    def command(self, *args: str, cwd=None, env=None, timeout=60) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=cwd, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def node_idle(self) -> bool:
        proc = self.command("sinfo", "-h", "-o", "%T")
        return proc.returncode == 0 and proc.stdout.strip() == "idle"

    def sbatch(self, *args: str, cwd: str, env: dict[str, str]) -> str:
        proc = self.command("sbatch", "--parsable", *args, SCRIPT, cwd=cwd, env=env)
        assert proc.returncode == 0, proc.stderr
        job = proc.stdout.strip().split(";")[0]
        self.jobs.append(job)
        return job

    def job_fields(self, job: str) -> dict[str, str]:
        """``scontrol show job``, as a dict (finished jobs stay for MinJobAge, 300 s)."""
        text = self.command("scontrol", "-o", "show", "job", job).stdout
        return dict(f.split("=", 1) for f in text.split() if "=" in f)

    def wait_for_end(self, job: str, timeout: float) -> dict[str, str]:
        running = ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "")
        wait_until(lambda: self.job_fields(job).get("JobState") not in running, timeout,
                   f"job {job} to end")  # fmt: skip
        return self.job_fields(job)

    def stop(self) -> None:
        """Cancel the jobs, wait (bounded) until Slurm has ended their processes, then stop
        the daemons."""
        for job in self.jobs:
            self.command("scancel", job)
        try:
            if self.jobs:  # squeue also lists jobs whose processes are being killed
                wait_until(self.queue_empty, 60, "the jobs to leave the queue")
        finally:
            self.stop_daemons()

    def queue_empty(self) -> bool:
        return not self.command("squeue", "-h", "-j", ",".join(self.jobs)).stdout.strip()

    def stop_daemons(self) -> None:
        for daemon in reversed(self.daemons):
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=10)


@pytest.fixture(scope="module")
def slurm():
    home = tempfile.mkdtemp(prefix="hpsearch-slurm-")  # not pytest's 0700 tree: see munged
    cluster = Slurm(home)
    try:
        try:
            cluster.start()
        except (AssertionError, OSError) as err:
            # a machine where the daemons cannot run (no munge, a sandbox) cannot test this
            pytest.skip(f"Slurm did not start here: {err}; {cluster.log_tail()}")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def job_environment(**variables: str) -> dict[str, str]:
    """What a user's shell holds at submission: an environment where ``python`` imports
    this checkout's hpsearch, and the script's variables."""
    path = os.pathsep.join([os.path.dirname(sys.executable), DAEMON_PATH])
    return {"PATH": path, "PYTHONPATH": ROOT, "METHOD": "rs", "PROBLEM": SLEEPY, **variables}


def finished(out: str):
    df = load_results(out)
    return df[df["status"].isin(FINISHED)]


def test_plain_srun_is_refused_with_the_fix(slurm, tmp_path):
    proc = slurm.command(
        "srun", "-n", "3", "--mpi=none", sys.executable, "-m", "hpsearch.rs", "--problem", SLEEPY,
        "--max-evals", "2", "--output", "out", cwd=tmp_path, env=job_environment(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    refusals = [line for line in proc.stderr.splitlines() if "hpsearch.rs: error:" in line]
    assert len(refusals) == 1 and "srun --mpi=pmi2" in refusals[0], proc.stderr
    assert not (tmp_path / "out").exists()


def seconds(duration: str) -> int:
    """Seconds in Slurm's ``[d-]hh:mm:ss``."""
    days, _, clock = duration.rpartition("-")
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return int(days or 0) * 86400 + total


def search_timeout(log: str) -> tuple[int, int]:
    """The --timeout the script chose and the seconds it found left in the allocation."""
    match = re.search(r"timeout=(\d+)s \((\d+)s left, from the scheduler\)", log)
    assert match, log
    return int(match[1]), int(match[2])


def test_batch_script_stops_before_the_time_limit_and_resumes(slurm, tmp_path):
    out = str(tmp_path / "out")
    env = job_environment(OUTPUT="out", MAX_EVALS="100000", GRACE="10", MARGIN_S="0")
    cpu_only = ["-N", "1", "--gpus-per-node=0", "--cpus-per-task=1"]
    first = slurm.sbatch("-t", "10", "--ntasks-per-node=4", *cpu_only, "-o", "first-%j.log",
                         cwd=str(tmp_path), env=env)  # fmt: skip
    results = os.path.join(out, "results.csv")
    wait_until(lambda: os.path.exists(results) and len(load_results(out)), 180, "a first row")
    # Once the search runs, the time limit drops to about 2 minutes from now: the script's
    # --signal=TERM@120 comes at one of Slurm's next checks of time limits (every 30 s),
    # not while Python starts (a task killed then would fail the job, and nothing is lost).
    elapsed = seconds(slurm.job_fields(first)["RunTime"])
    limit = (elapsed + 115 + 59) // 60  # minutes, as Slurm keeps time limits
    update = slurm.command("scontrol", "update", f"JobId={first}", f"TimeLimit={limit}")
    assert update.returncode == 0, update.stderr
    job = slurm.wait_for_end(first, 150)
    log = (tmp_path / f"first-{first}.log").read_text()
    assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), log
    assert log.count("stopped by SIGTERM") == 1, log  # one master, stopped by the signal
    timeout, left = search_timeout(log)
    assert timeout <= left <= 600, log  # from the allocation's 10 minutes
    rows = finished(out)
    assert len(rows) >= 3 and rows["job_id"].is_unique, log
    assert set(load_results(out)["worker"]) == {1, 2, 3}, log

    # the second allocation, its workers given in the environment, resumes the search
    max_evals = len(rows) + 30
    env.update(MAX_EVALS=str(max_evals), MARGIN_S="300", GPUS_PER_NODE="0", WORKERS_PER_NODE="3")
    second = slurm.sbatch("-t", "5", "-n", "4", *cpu_only, "-o", "second-%j.log",
                          cwd=str(tmp_path), env=env)  # fmt: skip
    job = slurm.wait_for_end(second, 120)
    log = (tmp_path / f"second-{second}.log").read_text()
    assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), log
    assert "--resume" in log and log.count("stopped by max-evals") == 1, log
    timeout, left = search_timeout(log)
    assert timeout <= left / 2, log  # 60 s at least, but at most half a short allocation
    rows = finished(out)
    assert len(rows) == max_evals and rows["job_id"].is_unique, log
    assert set(rows["worker"]) == {1, 2, 3}, log
    with open(os.path.join(out, "best.json")) as f:
        assert json.load(f)["job_id"] == int(rows.loc[rows["objective"].idxmin(), "job_id"])
