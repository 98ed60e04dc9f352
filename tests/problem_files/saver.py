"""A problem whose run saves a checkpoint, reports, and then misbehaves as ``mode`` says.

- ``finish``: returns normally after its report.
- ``hang_after_report``: hangs with nothing written since its report (killed by a timeout).
- ``hang_mid_save``: starts writing a second file after its report, then hangs mid-write.
"""

import time

from hpsearch import Problem

problem = Problem("saver", direction="minimize")
problem.add_hyperparameter("mode", ["finish", "hang_after_report", "hang_mid_save"])
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config: dict, trial=None) -> float:
    assert trial is not None
    (trial.checkpoint_dir / "weights.bin").write_bytes(b"w" * 1000)
    trial.report(1, config["x"])
    if config["mode"] == "hang_after_report":
        time.sleep(3600)
    if config["mode"] == "hang_mid_save":
        with open(trial.checkpoint_dir / "weights-2.bin", "wb") as f:
            f.write(b"half")
            f.flush()
            time.sleep(3600)
    return config["x"]
