"""Population-based training (PBT): a population trains in segments, and its weakest members
take over the weights and hyperparameters of its strongest, then perturb them.

Every member trains ``interval`` steps per job (a *segment*), continuing its own checkpoint.
When a segment ends, the member is judged against the latest values of the others, with no
generation barrier (members are compared at a step both have reached, from their reports):
once it has trained ``ready_after`` steps, a member in the bottom ``quantile`` copies the
checkpoint of a member in the top ``quantile`` (*exploit*, its step
count included) and changes the copied hyperparameters (*explore*): each mutable one is
redrawn from its declared distribution with probability ``resample``, else a real or integer
value is multiplied by one of the ``perturb`` factors (clipped to its bounds) and an ordinal
or categorical one moves to a neighbouring or a random choice. The problem declares which
hyperparameters may change during training (``problem.mutable``; all of them by default).
Every exploit is a row of ``lineage.csv``. The search ends when every member has trained
``max_steps`` steps.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hpsearch.arguments import positive_int
from hpsearch.curve import Curve
from hpsearch.evaluation import DONE, FINISHED, Job, Result
from hpsearch.problem import Problem, takes_trial
from hpsearch.results import ResultsLog, valid_reports
from hpsearch.scheduling import Scheduler, TrialPlan
from hpsearch.search.base import Seed
from hpsearch.search.population import Member, best_member, restore_members
from hpsearch.search.random import RandomSearch
from hpsearch.space import Categorical, Config, Integer, Ordinal, Real
from hpsearch.trial import Report

log = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.csv"
LINEAGE_COLUMNS = ["step", "member", "copied_from", "job_copied", "old", "new"]


def _check_fraction(name: str, value: float, high: float = 1.0) -> float:
    if not isinstance(value, int | float) or not 0 < value <= high:
        raise ValueError(
            f"The {name!r} parameter of PBT must be a float in (0, {high:g}]. Got {value!r} instead."
        )
    return float(value)


class PBT(Scheduler):
    """Asynchronous population-based training of ``population`` members up to ``max_steps``.

    Needs a run function taking a trial (it must continue ``trial.restore_from`` and apply
    the configuration it is given after restoring). ``lineage_path``, when given, receives a
    row per exploit.
    """

    def __init__(
        self,
        problem: Problem,
        population: int = 8,
        interval: int = 2,
        max_steps: int = 30,
        quantile: float = 0.25,
        resample: float = 0.25,
        perturb: Sequence[float] = (0.8, 1.2),
        ready_after: int | None = None,
        seed: Seed = None,
        lineage_path: str | None = None,
    ) -> None:
        for name, value in [("population", population), ("interval", interval)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"The {name!r} parameter of PBT must be an int >= 1. Got {value!r} instead."
                )
        if not isinstance(max_steps, int) or max_steps < interval:
            raise ValueError(
                f"The 'max_steps' parameter of PBT must be an int >= interval ({interval}). "
                f"Got {max_steps!r} instead."
            )
        self.quantile = _check_fraction("quantile", quantile, 0.5)
        self.resample = float(resample)
        if not 0 <= self.resample <= 1:
            raise ValueError(
                f"The 'resample' parameter of PBT must be a float in [0, 1]. Got {resample!r} instead."
            )
        if not perturb or any(not (isinstance(f, int | float) and f > 0) for f in perturb):
            raise ValueError(
                f"The 'perturb' parameter of PBT must be factors > 0. Got {perturb!r} instead."
            )
        if problem.run is not None and not takes_trial(problem.run):
            raise ValueError(
                f"PBT needs a run function that takes the trial, run(config, trial); "
                f"problem {problem.name!r} has run(config)"
            )
        self.problem = problem
        self.population, self.interval, self.max_steps = population, interval, max_steps
        self.perturb = [float(f) for f in perturb]
        self.ready_after = interval if ready_after is None else int(ready_after)
        self.mutable = list(getattr(problem, "mutable", None) or problem.space.names)
        unknown = [n for n in self.mutable if n not in problem.space.names]
        if unknown:
            raise ValueError(f"problem {problem.name!r}: mutable names unknown {unknown}")
        self.rng = np.random.default_rng(seed)
        self.lineage_path = lineage_path
        initial = RandomSearch(problem, seed=self.rng).ask(population)
        self.members = [Member(config) for config in initial]
        self.running: set[int] = set()  # members with a segment out
        #: member -> the curve of the weights it holds: members are compared at a step both
        #: have reached. A member that copied another keeps its old curve, and so its rank,
        #: until it has trained with its new values (the next member judged is not pushed
        #: into the bottom by a copy).
        self.curves = [Curve() for _ in range(population)]
        #: member -> the curve its running segment extends: its own, or after a copy the
        #: source's up to the copied step
        self.base: dict[int, Curve] = {}
        self.building: dict[int, Curve] = {}
        self.done: set[int] = set()  # members that reached max_steps
        self.plans: list[TrialPlan] = [self._segment(m) for m in range(population)]

    # ---- the scheduler interface -----------------------------------------------------------
    def restore(self, log: ResultsLog, rerun: Sequence[Job]) -> None:
        """Rebuild the population from an earlier run: each member continues from its latest
        finished segment whose checkpoint is kept (the jobs that were running go out again
        first, as they were); a member without one starts afresh."""
        restore_members(self.members, log, self.problem)
        self._restore_curves(log)
        self.done = {m for m, member in enumerate(self.members) if member.step >= self.max_steps}
        running = {job.member for job in rerun if job.member is not None}
        self.running = running
        self.plans = [
            self._segment(m)
            for m in range(self.population)
            if m not in running and m not in self.done
        ]

    def _restore_curves(self, log: ResultsLog) -> None:
        """Each member's curve from the reports (steps.csv) of the segments its weights came
        from: its latest finished segment, that segment's parent, and so on back."""
        done = log.previous
        if len(done):
            done = done[done["status"] == DONE].drop_duplicates("job_id", keep="last")
        parents = (
            {}
            if not len(done) or "parent" not in done
            else dict(zip(done["job_id"].astype(int), done["parent"], strict=True))
        )
        steps = valid_reports(log.previous_steps)
        reports = dict(iter(steps.groupby(steps["job_id"].astype(int)))) if len(steps) else {}
        for curve, member in zip(self.curves, self.members, strict=True):
            if not math.isfinite(member.value):
                continue
            chain, job = [], member.job_id
            while job is not None and job not in chain:
                chain.append(job)
                parent = parents.get(job)
                job = None if parent is None or pd.isna(parent) else int(parent)
            for job in reversed(chain):
                rows = reports.get(job)
                if rows is not None:
                    for step, objective in zip(rows["step"], rows["objective"], strict=True):
                        curve.add(float(step), self.problem.sign * float(objective))
            curve.add(float(member.step), member.value)  # what its segment returned counts

    def take(self, n: int) -> list[TrialPlan]:
        taken, self.plans = self.plans[:n], self.plans[n:]
        self.running.update(p.member for p in taken if p.member is not None)
        return taken

    def report(self, job: Job, report: Report) -> bool:
        m = job.member
        if m is not None and m < self.population and report.objective is not None:
            value = self.problem.sign * float(report.objective)
            if math.isfinite(value):
                if m not in self.building:
                    base = self.base.get(m, self.curves[m])
                    self.building[m] = base.until(base.last_step or 0)
                self.building[m].add(float(report.step), value)
        return False

    def finished(self, results: list[Result]) -> None:
        for r in results:
            m = r.job.member
            if m is None or m >= self.population:
                continue
            self.running.discard(m)
            if r.status not in FINISHED:  # cancelled: the search is stopping
                continue
            self._segment_ended(m, r)

    def needed_checkpoints(self) -> Collection[int]:
        return [m.job_id for m in self.members if m.job_id is not None]

    @property
    def exhausted(self) -> bool:
        return len(self.done) == self.population

    def best(self) -> tuple[Config, float] | None:
        return best_member(self.members, self.problem)

    # ---- decisions -------------------------------------------------------------------------
    def _segment(self, m: int) -> TrialPlan:
        member = self.members[m]
        return member.plan(m, min(self.max_steps, member.step + self.interval))

    def _segment_ended(self, m: int, result: Result) -> None:
        member = self.members[m]
        building = self.building.pop(m, None)
        if not member.trained(result, self.problem):
            self._segment_failed(m)  # a retry starts from the same weights: the same base
            return
        base = self.base.pop(m, self.curves[m])
        curve = building or base.until(base.last_step or 0)
        curve.add(float(member.step), member.value)  # what it returned is what counts
        self.curves[m] = curve
        if member.step >= self.max_steps:
            self.done.add(m)
            return
        if member.step >= self.ready_after:
            self._exploit(m)
        self.plans.append(self._segment(m))

    def _segment_failed(self, m: int) -> None:
        """Run a failed member once more from its own checkpoint; when that fails too, it
        takes over a top member (or, with nobody to copy, stops)."""
        if self.members[m].failures < 2:
            self.plans.append(self._segment(m))
            return
        self.members[m].failures = 0
        if self._exploit(m, force=True):
            self.plans.append(self._segment(m))
        else:
            log.warning("PBT member %d failed twice with no member to copy: stopped", m)
            self.done.add(m)

    def _beats(self, i: int, m: int) -> bool:
        """True when member ``i`` has a better value than ``m`` at a step both have reached."""
        mine, theirs = self.curves[m], self.curves[i]
        if mine.last_step is None or theirs.last_step is None:
            return False
        common = min(mine.last_step, theirs.last_step)
        a, b = theirs.at(common), mine.at(common)
        return a is not None and b is not None and a < b

    def _in_bottom(self, m: int, cut: int) -> bool:
        """True when at least ``population - cut`` members beat ``m`` at a step both have
        reached (a member that has not reported yet does not)."""
        better = sum(self._beats(i, m) for i in range(self.population) if i != m)
        return better >= self.population - cut

    def _top(self, m: int, cut: int, force: bool) -> list[int]:
        """The ``cut`` best members that ``m`` may copy, by their value at ``m``'s step or,
        for those not there yet, their latest (a member behind looks no better than it is).
        Each beats ``m`` at a step both have reached, unless ``m`` must copy (``force``)."""
        step = self.curves[m].last_step
        values = {}
        for i, curve in enumerate(self.curves):
            member = self.members[i]
            # nobody copies a member that copied another and has not trained since, or whose
            # last segment failed (its value is NaN then); a member that has finished
            # training is copied only by one that cannot go on
            if i == m or member.job_id is None or not math.isfinite(member.value):
                continue
            if i in self.done and not force:
                continue
            if not force and not self._beats(i, m):
                continue
            value = curve.at(step) if step is not None else None
            value = curve.values[-1] if value is None and curve.values else value
            if value is not None:
                values[i] = value
        return sorted(values, key=values.__getitem__)[:cut]

    def _exploit(self, m: int, force: bool = False) -> bool:
        """Copy a top member into ``m`` when ``m`` is in the bottom quantile (or ``force``);
        True when it did.

        Members are compared at a step both have reached, so a member that is ahead in its
        training is not judged against values the others reported steps ago. ``m`` is in the
        bottom quantile only when at least ``(1 - quantile) * population`` members beat it,
        so the first members to report are not exploited for lack of others to compare with.
        """
        cut = max(1, math.floor(self.quantile * self.population))
        if not force and not self._in_bottom(m, cut):
            return False
        top = self._top(m, cut, force)
        if not top:
            return False
        s = int(self.rng.choice(top))
        source, member = self.members[s], self.members[m]
        old = member.config
        new = self._explore(source.config)
        self.base[m] = self.curves[s].until(source.step)
        member.config, member.step, member.job_id = new, source.step, source.job_id
        member.value = math.nan  # judged again once it has trained with its new values
        if member.step >= self.max_steps:
            self.done.add(m)
        self._log_lineage(m, s, old, new)
        return True

    def _explore(self, config: Config) -> Config:
        new = dict(config)
        for name in self.mutable:
            dim = self.problem.space[name]
            if new.get(name) is None:
                continue
            if self.rng.random() < self.resample:
                new[name] = dim.from_unit(self.rng.random(1))[0]
            else:
                new[name] = self._perturbed(dim, new[name])
        return self.problem.space.validate(new)

    def _perturbed(self, dim: Any, value: Any) -> Any:
        if isinstance(dim, Ordinal):
            i = dim.index(value) + int(self.rng.choice([-1, 1]))
            return dim.choices[min(max(i, 0), len(dim.choices) - 1)]
        if isinstance(dim, Categorical):
            return dim.choices[int(self.rng.integers(len(dim.choices)))]
        if isinstance(dim, Real | Integer):
            scaled = value * float(self.rng.choice(self.perturb))
            clipped = min(max(scaled, dim.low), dim.high)
            return dim.check_value(round(clipped) if isinstance(dim, Integer) else clipped)
        return value

    def _log_lineage(self, m: int, source: int, old: Config, new: Config) -> None:
        if self.lineage_path is None:
            return
        fresh = not os.path.exists(self.lineage_path)
        changed = {k: (old.get(k), new[k]) for k in new if old.get(k) != new[k]}
        with open(self.lineage_path, "a", newline="") as f:
            writer = csv.writer(f)
            if fresh:
                writer.writerow(LINEAGE_COLUMNS)
            writer.writerow(
                [
                    self.members[m].step,
                    m,
                    source,
                    self.members[m].job_id,
                    json.dumps({k: v[0] for k, v in changed.items()}, sort_keys=True),
                    json.dumps({k: v[1] for k, v in changed.items()}, sort_keys=True),
                ]
            )


def _factors(text: str) -> list[float]:
    try:
        factors = [float(f) for f in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected factors like 0.8,1.2, got {text!r}") from None
    if not factors or any(not f > 0 for f in factors):
        raise argparse.ArgumentTypeError(f"factors must be > 0, got {text!r}")
    return factors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``python -m hpsearch.pbt``."""
    parser.add_argument("--population", type=positive_int, default=8, help="members (default 8)")
    parser.add_argument(
        "--interval", type=positive_int, default=2, help="steps per segment (default 2)"
    )
    parser.add_argument(
        "--max-steps", type=positive_int, default=30, help="steps each member trains (default 30)"
    )
    parser.add_argument(
        "--quantile", type=float, default=0.25, help="bottom and top fractions (default 0.25)"
    )
    parser.add_argument(
        "--resample",
        type=float,
        default=0.25,
        help="probability that explore redraws a value instead of perturbing it (default 0.25)",
    )
    parser.add_argument(
        "--perturb", type=_factors, default=[0.8, 1.2], help="perturbation factors (0.8,1.2)"
    )
    parser.add_argument(
        "--ready-after",
        type=positive_int,
        default=None,
        help="steps before a member may be exploited (default: one interval)",
    )
    # a population ends when every member has trained --max-steps: no cap on the segments
    parser.set_defaults(max_evals=1_000_000_000)


PARAMETERS = (
    "population",
    "interval",
    "max_steps",
    "quantile",
    "resample",
    "perturb",
    "ready_after",
)


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The PBT parameters of a parsed command line, by name (the seed excluded)."""
    return {name: getattr(args, name) for name in PARAMETERS}


def build(problem: Problem, args: argparse.Namespace) -> PBT:
    """The PBT scheduler configured by the command line; lineage.csv goes beside results."""
    return PBT(
        problem,
        **parameters(args),
        seed=args.seed,
        lineage_path=os.path.join(args.output, LINEAGE_FILE),
    )
