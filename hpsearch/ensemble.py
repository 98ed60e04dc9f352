"""Ensembles from the trained models of a finished search.

A run function saves its network's validation predictions into the trial's checkpoint
directory with :func:`hpsearch.predictions.save_predictions`. After the search, :func:`build` picks members among
the jobs whose checkpoint is usable and holds predictions: the ``topk`` best by the recorded
objective, or ``greedy`` forward selection with replacement (Caruana et al., 2004) on the
saved predictions. Classification averages class probabilities; regression takes the
weighted mean, with the spread across members as its uncertainty.

Selection on the validation set flatters the result it is scored on, so every ensemble also
carries an honest estimate: the validation set is split in two halves (fixed seed), each half
selects and the other scores, and the two scores are averaged, for the ensemble and for the
single best member alike.

``hpsearch ensemble OUTPUT [--k 10] [--method greedy|topk]`` writes ``OUTPUT/ensemble/``.
Selection needs the files the search left and the problem module search.json names (for its
``score_predictions``); :meth:`Ensemble.predict` loads the members' Keras models.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import KFold, StratifiedKFold

from hpsearch.arguments import EXIT_USAGE, ArgumentParser, positive_int
from hpsearch.checkpoints import CHECKPOINTS_DIR, read_marker, write_atomically
from hpsearch.evaluation import DONE, FAILED
from hpsearch.predictions import Predictions, accuracy, load_predictions, squeezed
from hpsearch.problem import Problem, ProblemLoadError, load_problem
from hpsearch.report import infer_maximize
from hpsearch.results import PARAM_PREFIX, RESULTS_FILE, load_results
from hpsearch.search_record import read_search

#: The folder of a results directory :func:`write` fills by default.
ENSEMBLE_DIR = "ensemble"
METHODS = ("greedy", "topk")
#: Seed of the validation set's split into the halves of the honest estimate.
SPLIT_SEED = 0


class EnsembleError(ValueError):
    """A results directory that no ensemble can be built from (one line, naming what is wrong)."""


# ---- scores -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """How predictions are scored: ``score(y_true, y_pred)``, better when larger if ``maximize``."""

    name: str
    score: Callable[[np.ndarray, np.ndarray], float]
    maximize: bool

    def signed(self, values: Any) -> np.ndarray:
        """``values`` as numbers to maximise (NaN: worst)."""
        values = np.asarray(values, dtype=float)
        return np.where(np.isnan(values), -np.inf, values if self.maximize else -values)

    def best(self, values: Any) -> int:
        """The index of the best of ``values`` (the first of equal ones)."""
        return int(np.argmax(self.signed(values)))


def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean squared error over examples and outputs."""
    return float(mean_squared_error(y_true, y_pred))


#: The metric of a task whose problem defines no ``score_predictions``.
DEFAULT_METRICS = {
    "classification": Metric("accuracy", accuracy, maximize=True),
    "regression": Metric("mse", mse, maximize=False),
}


def recorded_problem(record: Mapping[str, Any] | None) -> tuple[Problem | None, str]:
    """The problem a ``search.json`` record names, imported; None and the reason when it
    cannot be."""
    source = ((record or {}).get("problem") or {}).get("source")
    if not isinstance(source, str):
        return None, "the search records no problem module"
    try:
        return load_problem(source), ""
    except ProblemLoadError as err:
        return None, str(err)


def problem_metric(problem: Problem | None, task: str, reason: str = "") -> tuple[Metric, str]:
    """The metric of ``problem`` and a note on the choice: its ``score_predictions`` (in its
    direction) when it defines one, otherwise the task's default (accuracy; mean squared
    error) with the reason (``reason``: why there is no problem)."""
    default = DEFAULT_METRICS[task]
    if problem is None:
        return default, f"default: {reason or 'no problem'}"
    if problem.score_predictions is None:
        return default, f"default: problem {problem.name!r} defines no score_predictions"
    function = getattr(problem.score_predictions, "__name__", "<lambda>")
    name = f"{problem.name} objective" if function == "<lambda>" else f"{function} ({problem.name})"
    metric = Metric(name, problem.score_predictions, problem.direction == "maximize")
    return metric, "the problem's score_predictions"


# ---- selection ----------------------------------------------------------------------------
def combine(predictions: np.ndarray, counts: Any) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean over members (axis 0) of ``predictions`` and the weighted standard
    deviation around it, with weights ``counts`` (how often each member was picked)."""
    weights = np.asarray(counts, dtype=float)
    mean = np.average(predictions, axis=0, weights=weights)
    std = np.sqrt(np.average((predictions - mean) ** 2, axis=0, weights=weights))
    return mean, std


def greedy_counts(
    predictions: np.ndarray, y_true: np.ndarray, metric: Metric, k: int
) -> np.ndarray:
    """Greedy forward selection with replacement: how often each member is picked.

    Starts from the best single member, then adds the member whose addition scores best, up
    to ``k`` picks in all, and keeps the best-scoring prefix (the shortest among equals).
    ``predictions`` has one row per member; ties go to the member listed first.
    """
    n_members = len(predictions)
    singles = [metric.score(y_true, p) for p in predictions]
    counts = np.zeros(n_members, dtype=np.int64)
    first = metric.best(singles)
    counts[first] = 1
    total = predictions[first].astype(float)
    best_counts, best_score = counts.copy(), singles[first]
    for size in range(2, k + 1):
        scores = [metric.score(y_true, (total + p) / size) for p in predictions]
        pick = metric.best(scores)
        counts[pick] += 1
        total = total + predictions[pick]
        if metric.signed(scores[pick]) > metric.signed(best_score):
            best_counts, best_score = counts.copy(), scores[pick]
    return best_counts


def top_counts(ranking: Any, k: int) -> np.ndarray:
    """One pick each for the ``k`` members first in ``ranking`` (values to maximise; NaN last,
    ties to the member listed first)."""
    values = np.asarray(ranking, dtype=float)
    order = np.argsort(-np.where(np.isnan(values), -np.inf, values), kind="stable")
    counts = np.zeros(len(values), dtype=np.int64)
    counts[order[:k]] = 1
    return counts


def halves(y_true: np.ndarray, task: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two (select, score) index pairs of the validation set's fixed split in halves,
    stratified by label for classification when every label occurs twice or more."""
    splitter: KFold | StratifiedKFold = KFold(2, shuffle=True, random_state=SPLIT_SEED)
    if task == "classification" and np.unique(y_true, return_counts=True)[1].min() >= 2:
        splitter = StratifiedKFold(2, shuffle=True, random_state=SPLIT_SEED)
    return list(splitter.split(np.zeros(len(y_true)), y_true))


def select(
    method: str,
    predictions: np.ndarray,
    y_true: np.ndarray,
    metric: Metric,
    k: int,
    ranking: Any = None,
) -> np.ndarray:
    """The counts of ``method`` (``greedy`` or ``topk``); top-k ranks by ``ranking`` (values to
    maximise), by each member's score when None."""
    if method == "greedy":
        return greedy_counts(predictions, y_true, metric, k)
    if ranking is None:
        ranking = metric.signed([metric.score(y_true, p) for p in predictions])
    return top_counts(ranking, k)


def split_scores(
    method: str, predictions: np.ndarray, y_true: np.ndarray, task: str, metric: Metric, k: int
) -> tuple[float, float]:
    """The honest estimate: (ensemble, single best member) scores, each selected on one half
    of the validation set and scored on the other, averaged over both ways round.

    Top-k ranks by the members' scores on the selecting half here, since the recorded
    objective was measured on the whole validation set. NaN with fewer than 2 examples.
    """
    if len(y_true) < 2:
        return math.nan, math.nan
    ensemble, single = [], []
    try:
        for chosen, held_out in halves(y_true, task):
            part = predictions[:, chosen]
            counts = select(method, part, y_true[chosen], metric, k)
            mean, _ = combine(predictions[:, held_out], counts)
            ensemble.append(metric.score(y_true[held_out], mean))
            best = metric.best([metric.score(y_true[chosen], p) for p in part])
            single.append(metric.score(y_true[held_out], predictions[best, held_out]))
    except Exception:
        return math.nan, math.nan
    return float(np.mean(ensemble)), float(np.mean(single))


# ---- the ensemble -------------------------------------------------------------------------
@dataclass
class Member:
    """A job of the search in the ensemble."""

    job_id: int
    #: How often selection picked it; its weight is ``count / sum of counts``.
    count: int
    #: Its own validation score, by the ensemble's metric on its saved predictions.
    score: float
    #: Its recorded objective (results.csv).
    objective: float
    #: Its configuration (inactive hyperparameters left out).
    config: dict[str, Any]
    checkpoint_dir: Path


@dataclass
class Ensemble:
    """Members with their counts, and the scores on the validation set.

    ``score`` is the ensemble's validation score by ``metric`` and ``best_single`` that of
    the best single candidate (``best_single_job``); ``split_score`` and
    ``split_best_single`` are the honest half-split estimates of the two. ``predictions`` are
    the ensemble's validation predictions (``std`` their spread across members, for
    regression; None for classification).
    """

    method: str
    k: int
    task: str
    metric: Metric
    metric_note: str
    members: list[Member]
    score: float
    best_single: float
    best_single_job: int
    split_score: float
    split_best_single: float
    n_candidates: int
    skipped: dict[str, int]
    predictions: np.ndarray
    std: np.ndarray | None
    y_true: np.ndarray
    #: The hyperparameters' names, in the order of results.csv.
    parameters: list[str] = field(default_factory=list)
    _models: list[Any] | None = field(default=None, repr=False)

    @property
    def weights(self) -> np.ndarray:
        """Each member's weight: its count over the sum of counts."""
        counts = np.array([m.count for m in self.members], dtype=float)
        return counts / counts.sum()

    def predict(
        self, x: Any, return_std: bool = False, custom_objects: Mapping[str, Any] | None = None
    ) -> Any:
        """The ensemble's predictions for inputs ``x``: the members' Keras models (loaded once
        with :func:`hpsearch.keras.load_checkpoint`) combined with their weights.

        Shapes as saved (class probabilities, or values); with ``return_std``, ``(mean,
        std)``, std being the weighted spread across members. ``custom_objects`` as for
        ``load_checkpoint``.
        """
        if self._models is None:
            from hpsearch.keras import load_checkpoint

            self._models = [
                load_checkpoint(m.checkpoint_dir, custom_objects)[0] for m in self.members
            ]
        outputs = np.stack(
            [squeezed(np.asarray(model.predict(x, verbose=0))) for model in self._models]
        )
        mean, std = combine(outputs, [m.count for m in self.members])
        return (mean, std) if return_std else mean

    def summary(self) -> dict[str, Any]:
        """What ``ensemble.json`` holds."""
        direction = "maximize" if self.metric.maximize else "minimize"
        return {
            "method": self.method,
            "k": self.k,
            "task": self.task,
            "metric": self.metric.name,
            "metric_direction": direction,
            "metric_source": self.metric_note,
            "score": self.score,
            "best_single": {"job_id": self.best_single_job, "score": self.best_single},
            "split": {
                "seed": SPLIT_SEED,
                "score": self.split_score,
                "best_single": self.split_best_single,
            },
            "members": {str(m.job_id): m.count for m in self.members},
            "n_candidates": self.n_candidates,
            "skipped": self.skipped,
        }


@dataclass
class _Candidate:
    job_id: int
    objective: float
    config: dict[str, Any]
    directory: Path
    predictions: Predictions


def _config(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        str(key)[len(PARAM_PREFIX) :]: value
        for key, value in row.items()
        if str(key).startswith(PARAM_PREFIX)
        and value is not None
        and not (isinstance(value, float) and math.isnan(value))
    }


def _candidates(output_dir: str, df: pd.DataFrame) -> tuple[list[_Candidate], dict[str, int]]:
    """The jobs of a results frame with a usable checkpoint holding predictions, and how many
    others were skipped, by reason."""
    skipped = {"failed": 0, "not finished": 0, "no usable checkpoint": 0, "no predictions": 0}
    found: list[_Candidate] = []
    rows = df.drop_duplicates("job_id", keep="last") if len(df) else df
    for row in rows.to_dict("records"):
        job_id = int(row["job_id"])
        directory = Path(output_dir) / CHECKPOINTS_DIR / str(job_id)
        if row.get("status") != DONE:
            skipped["failed" if row.get("status") == FAILED else "not finished"] += 1
            continue
        try:
            read_marker(directory)
        except LookupError:
            skipped["no usable checkpoint"] += 1
            continue
        try:
            predictions = load_predictions(directory)
        except (FileNotFoundError, ValueError):
            skipped["no predictions"] += 1
            continue
        objective = float(row["objective"]) if pd.notna(row.get("objective")) else math.nan
        found.append(_Candidate(job_id, objective, _config(row), directory, predictions))
    return found, {reason: n for reason, n in skipped.items() if n}


def _consistent(candidates: Sequence[_Candidate]) -> None:
    """EnsembleError naming two jobs whose predictions cannot be combined."""
    first = candidates[0]
    ref = first.predictions
    for c in candidates[1:]:
        p = c.predictions
        if p.task != ref.task:
            raise EnsembleError(
                f"job {c.job_id} saved {p.task} predictions, job {first.job_id} {ref.task} ones"
            )
        if p.y_true.shape != ref.y_true.shape or not np.array_equal(p.y_true, ref.y_true):
            raise EnsembleError(
                f"the validation targets of job {c.job_id} differ from those of job "
                f"{first.job_id}: members must be validated on the same examples"
            )
        if p.y_pred.shape != ref.y_pred.shape:
            raise EnsembleError(
                f"job {c.job_id} saved predictions of shape {p.y_pred.shape}, job "
                f"{first.job_id} of shape {ref.y_pred.shape}"
            )


def build(output_dir: str | os.PathLike[str], k: int = 10, method: str = "greedy") -> Ensemble:
    """An ensemble of the jobs in ``output_dir`` (a finished search's results directory).

    Candidates are the finished jobs whose checkpoint under ``output_dir/checkpoints`` is
    usable and holds predictions from :func:`save_predictions`; only the best
    ``--keep-checkpoints`` jobs (default 10) keep theirs. ``method`` ``topk``: the ``k`` best
    by the recorded objective, equal weights; ``greedy``: forward selection with replacement
    on the saved predictions, up to ``k`` picks. Scored by the problem's
    ``score_predictions`` when it defines one, else accuracy or mean squared error.

    Raises ValueError for ``k`` < 1 or an unknown method, :class:`EnsembleError` (a
    ValueError) for a directory without results.csv, without any candidate, or whose
    candidates' targets, tasks or shapes differ.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"The 'k' parameter of build must be an int >= 1. Got {k!r} instead.")
    if method not in METHODS:
        raise ValueError(
            f"The 'method' parameter of build must be one of {METHODS}. Got {method!r} instead."
        )
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        raise EnsembleError(f"{output_dir!r} is not a directory")
    if not os.path.isfile(os.path.join(output_dir, RESULTS_FILE)):
        raise EnsembleError(f"{output_dir!r} holds no {RESULTS_FILE}")
    problem, reason = recorded_problem(read_search(output_dir))
    df = None
    if problem is not None:  # each value of its declared type
        with contextlib.suppress(ValueError):  # a space changed since: as pandas reads them
            df = load_results(output_dir, problem.space)
    if df is None:
        df = load_results(output_dir)
    if len(df) and "job_id" not in df.columns:
        raise EnsembleError(f"{os.path.join(output_dir, RESULTS_FILE)} has no column 'job_id'")
    found, skipped = _candidates(output_dir, df)
    if not found:
        reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "no jobs"
        raise EnsembleError(
            f"{output_dir!r} has no job with a usable checkpoint holding validation predictions "
            f"({reasons}): save them with hpsearch.predictions.save_predictions"
        )
    sign = 1.0 if infer_maximize(df, output_dir) else -1.0
    # Best recorded objective first: top-k takes a prefix, and greedy's ties go to it.
    found.sort(key=lambda c: -(sign * c.objective) if not math.isnan(c.objective) else math.inf)
    _consistent(found)
    task, y_true = found[0].predictions.task, found[0].predictions.y_true
    metric, note = problem_metric(problem, task, reason)
    predictions = np.stack([c.predictions.y_pred for c in found])
    ranking = [sign * c.objective for c in found]
    try:
        counts = select(method, predictions, y_true, metric, k, ranking)
        mean, std = combine(predictions, counts)
        singles = [metric.score(y_true, p) for p in predictions]
        score = metric.score(y_true, mean)
    except Exception as err:
        raise EnsembleError(f"the metric {metric.name} failed on the predictions: {err!r}") from err
    best = metric.best(singles)
    split_score, split_single = split_scores(method, predictions, y_true, task, metric, k)
    members = [
        Member(c.job_id, int(n), singles[i], c.objective, c.config, c.directory)
        for i, (c, n) in enumerate(zip(found, counts, strict=True))
        if n
    ]
    return Ensemble(
        method=method,
        k=k,
        task=task,
        metric=metric,
        metric_note=note,
        members=members,
        score=score,
        best_single=singles[best],
        best_single_job=found[best].job_id,
        split_score=split_score,
        split_best_single=split_single,
        n_candidates=len(found),
        skipped=skipped,
        predictions=mean,
        std=std if task == "regression" else None,
        y_true=y_true,
        parameters=[
            str(c)[len(PARAM_PREFIX) :] for c in df.columns if str(c).startswith(PARAM_PREFIX)
        ],
    )


def write(ensemble: Ensemble, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``members.csv``, ``ensemble.json`` and the validation predictions
    (``val_pred.npy``, ``val_true.npy``, and ``val_std.npy`` for regression) into
    ``directory`` (created); return the paths by name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "job_id": m.job_id,
            "count": m.count,
            "weight": w,
            "score": m.score,
            "objective": m.objective,
            **{PARAM_PREFIX + name: value for name, value in m.config.items()},
        }
        for m, w in zip(ensemble.members, ensemble.weights, strict=True)
    ]
    columns = ["job_id", "count", "weight", "score", "objective"]
    columns += [PARAM_PREFIX + name for name in ensemble.parameters]
    arrays = {"val_pred.npy": ensemble.predictions, "val_true.npy": ensemble.y_true}
    if ensemble.std is not None:
        arrays["val_std.npy"] = ensemble.std
    table = pd.DataFrame(rows, columns=columns, dtype=object)  # integers stay integers
    summary = json.dumps(ensemble.summary(), indent=2) + "\n"
    paths = {
        "members.csv": write_atomically(
            directory, "members.csv", lambda p: table.to_csv(p, index=False)
        ),
        "ensemble.json": write_atomically(
            directory, "ensemble.json", lambda p: Path(p).write_text(summary)
        ),
    }
    for name, values in arrays.items():
        paths[name] = write_atomically(directory, name, _array_writer(values))
    if ensemble.std is None:  # from an earlier regression ensemble written here
        (directory / "val_std.npy").unlink(missing_ok=True)
    return paths


def _array_writer(values: np.ndarray) -> Callable[[str], None]:
    def write(path: str) -> None:
        np.save(path, values)

    return write


def summary_text(ensemble: Ensemble) -> str:
    """The few lines ``hpsearch ensemble`` prints: members, metric, ensemble vs single best."""
    metric = ensemble.metric
    picks = sum(m.count for m in ensemble.members)
    skipped = ", ".join(f"{n} {reason}" for reason, n in ensemble.skipped.items()) or "none"
    return "\n".join(
        [
            f"{ensemble.method} ensemble of {len(ensemble.members)} members ({picks} picks, "
            f"k={ensemble.k}) from {ensemble.n_candidates} candidates; skipped: {skipped}",
            f"metric: {metric.name} ({'higher' if metric.maximize else 'lower'} is better; "
            f"{ensemble.metric_note})",
            f"validation:      ensemble {ensemble.score:.6g}   single best (job "
            f"{ensemble.best_single_job}) {ensemble.best_single:.6g}",
            f"half split:      ensemble {ensemble.split_score:.6g}   single best "
            f"{ensemble.split_best_single:.6g}   (selected on one half, scored on the other)",
        ]
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m hpsearch.ensemble") -> int:
    """``hpsearch ensemble OUTPUT [--k 10] [--method greedy|topk] [--output DIR]``."""
    parser = ArgumentParser(
        prog=prog, description="Build an ensemble from the trained models of a finished search."
    )
    parser.add_argument("run", metavar="OUTPUT", help="the search's output directory")
    parser.add_argument(
        "--k", type=positive_int, default=10, help="most members (greedy: picks) (default 10)"
    )
    parser.add_argument(
        "--method", choices=METHODS, default="greedy", help="selection method (default greedy)"
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        default=None,
        help=f"where to write (default: OUTPUT/{ENSEMBLE_DIR})",
    )
    args = parser.parse_args(argv)
    destination = args.output or os.path.join(args.run, ENSEMBLE_DIR)
    try:
        if os.path.exists(destination) and not os.path.isdir(destination):
            raise ValueError(f"--output {destination!r} is a file, not a directory")
        ensemble = build(args.run, k=args.k, method=args.method)
        write(ensemble, destination)
    except (ValueError, OSError) as err:
        print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_USAGE
    print(summary_text(ensemble))
    print(f"written to {destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
