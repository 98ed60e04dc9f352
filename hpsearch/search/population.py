"""What population methods (PBT, replica exchange) share: members that train in segments,
each continuing the checkpoint of its latest finished one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hpsearch.checkpoints import is_usable
from hpsearch.evaluation import DONE, Result
from hpsearch.problem import Problem
from hpsearch.results import ResultsLog, configs_from_frame
from hpsearch.scheduling import TrialPlan


@dataclass
class Member:
    """The latest state of one member: its configuration, the job whose checkpoint it
    continues (None before it trained), the step that checkpoint holds, its latest objective
    to minimise (NaN: not judged), and how many segments in a row failed."""

    config: dict[str, Any]
    step: int = 0
    job_id: int | None = None
    value: float = math.nan
    failures: int = 0

    def trained(self, result: Result, problem: Problem) -> bool:
        """Take in a segment that ended; False (and one more failure) when it left nothing
        to continue: no usable checkpoint or no objective."""
        value = result.primary_objective
        if result.checkpoint is None or value is None:
            self.value = math.nan  # a failed segment says nothing of the member's weights
            self.failures += 1
            return False
        self.job_id, self.value, self.failures = result.job.job_id, problem.sign * value, 0
        self.step = int(result.step_end if result.step_end is not None else self.step)
        return True

    def plan(self, index: int, end: int) -> TrialPlan:
        """The member's next segment, continuing its checkpoint up to step ``end``."""
        return TrialPlan(dict(self.config), member=index, parent=self.job_id, max_steps=end)


def restore_members(members: Sequence[Member], log: ResultsLog, problem: Problem) -> None:
    """Set each member to its latest finished segment of an earlier run whose checkpoint is
    kept, with the hyperparameters it trained with; members without one stay as they are."""
    df = log.previous
    member = df["member"] if "member" in df else pd.Series(np.nan, index=df.index)
    done = df[(df["status"] == DONE) & member.notna()]
    done = done[[is_usable(log.output_dir, int(j)) for j in done["job_id"]]]
    if not len(done):
        return
    latest = done.sort_values(["step_end", "job_id"]).groupby("member").tail(1)
    configs = configs_from_frame(latest, problem.space)
    for (_, row), config in zip(latest.iterrows(), configs, strict=True):
        m = int(row["member"])
        if m < len(members):
            members[m].config, members[m].job_id = config, int(row["job_id"])
            members[m].step = int(row["step_end"])
            members[m].value = problem.sign * float(row["objective"])


def best_member(members: Sequence[Member], problem: Problem) -> tuple[dict[str, Any], float] | None:
    """The configuration and objective (problem's direction) of the best judged member."""
    judged = [m for m in members if math.isfinite(m.value)]
    if not judged:
        return None
    best = min(judged, key=lambda m: m.value)
    return best.config, problem.sign * best.value
