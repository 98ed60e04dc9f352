"""A problem whose run starts a program of its own (as a data loader's workers do).

Each run starts ``sleep 300`` and writes ``<pid> <SigIgn>`` of that program to a file named
after the pid in HPSEARCH_SPAWNER_DIR (SigIgn: the mask of signals it ignores, from
/proc/<pid>/status). With HPSEARCH_SPAWNER_HANG=1 the run then hangs; otherwise it ends the
program and returns ``x``.
"""

import os
import subprocess
import time

from hpsearch import Problem

problem = Problem("spawner", direction="minimize")
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config: dict) -> float:
    program = subprocess.Popen(["sleep", "300"])
    with open(f"/proc/{program.pid}/status") as f:
        ignored = next(line.split()[1] for line in f if line.startswith("SigIgn:"))
    path = os.path.join(os.environ["HPSEARCH_SPAWNER_DIR"], str(program.pid))
    with open(path + ".tmp", "w") as f:
        f.write(f"{program.pid} {ignored}\n")
    os.replace(path + ".tmp", path)
    if os.environ.get("HPSEARCH_SPAWNER_HANG") == "1":
        time.sleep(3600)
    program.kill()
    program.wait()
    return config["x"]
