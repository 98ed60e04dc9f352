"""Command lines shared by every search method: ``python -m hpsearch.<method> --problem ...``.

Bad input is reported in one line on stderr with exit status 2, before any evaluation starts;
a worker that cannot import the problem stops the search with one line and exit status 1.
Any other error is a bug and ends with its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hpsearch.arguments import (
    EXIT_USAGE,
    ArgumentParser,
    UsageError,
    non_negative_int,
    positive_float,
    positive_int,
)
from hpsearch.evaluators.base import WorkerError
from hpsearch.methods import Method, get_method, method_names
from hpsearch.problem import (
    Problem,
    ProblemLoadError,
    RunSource,
    defined_interactively,
    load_problem,
    run_source,
)

if TYPE_CHECKING:
    from hpsearch.evaluators.base import Evaluator
    from hpsearch.loop import SearchOutcome
    from hpsearch.output_lock import OutputLock
    from hpsearch.space import Space

SearchRunner = Callable[["Evaluator"], "SearchOutcome"]


def build_parser(method: Method, prog: str | None = None) -> ArgumentParser:
    """The parser of ``python -m hpsearch.<method>``: the common flags and the method's own."""
    parser = ArgumentParser(
        prog=prog or f"python -m hpsearch.{method.name}",
        description=f"Run a {method.description} on a problem, locally or under mpirun.",
    )
    parser.add_argument(
        "--problem", required=True, help="problem module (pkg.mod) or path to a .py file"
    )
    parser.add_argument(
        "--max-evals",
        type=non_negative_int,
        default=100,
        help="finished evaluations to reach (default 100)",
    )
    parser.add_argument(
        "--output", default="out", help="output directory for results.csv (default out)"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="local worker processes (default: number of cores)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed of the search")
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="wall-clock seconds before the search stops",
    )
    parser.add_argument(
        "--eval-timeout",
        type=positive_float,
        default=None,
        help="seconds one evaluation may take before it is killed",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds running evaluations may finish in after a stop (default 10)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the search recorded in --output"
    )
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="evaluate in the worker process itself, not in a child process; then a crash "
        "ends the worker (under mpirun, the search), --eval-timeout interrupts Python code "
        "only, and a stop cannot interrupt a running evaluation: the search (under mpirun, "
        "its worker ranks) ends only when the evaluation does, however long after --grace",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging detail (default WARNING)",
    )
    parser.add_argument(
        "--gpus-per-node",
        type=non_negative_int,
        default=None,
        help="under MPI, bind each worker to one of N GPUs by its node-local rank "
        "(default: detected; 0: no binding)",
    )
    parser.add_argument(
        "--threads-per-worker",
        type=positive_int,
        default=None,
        help="threads each evaluation may use (OpenMP, BLAS, TensorFlow); "
        "default: the node's cores shared among its workers",
    )
    parser.add_argument(
        "--keep-checkpoints",
        type=non_negative_int,
        default=10,
        help="keep the checkpoints of the best K trials (default 10), and those still needed",
    )
    method.add_arguments(parser)
    return parser


def _check_output(path: str, resume: bool) -> None:
    if not path:
        raise UsageError("--output is empty: give a directory")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--output {path!r} is a file, not a directory")
    results = os.path.join(path, "results.csv")
    if resume and not os.path.isfile(results):
        raise UsageError(f"--resume: there is no {results} to continue")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--output {path!r} is under {existing!r}, which is a file")
    try:  # what may be created there (a read-only or virtual file system refuses)
        os.rmdir(tempfile.mkdtemp(prefix=".hpsearch-", dir=existing))
    except OSError as err:
        raise UsageError(
            f"--output {path!r} cannot be created in {existing!r}: {err.strerror}"
        ) from None


def main(method_name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse the command line, check it, run the search; return the exit status.

    Under an MPI launcher with more than one rank, rank 0 runs the search and the other
    ranks serve as workers; otherwise evaluations run in a local process pool.
    """
    method = get_method(method_name)
    prog = prog or f"hpsearch.{method.name}"
    args = build_parser(method, prog).parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run_search(method, args, prog)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


def run_search(
    method: Method,
    args: argparse.Namespace,
    prog: str,
    problem: Problem | None = None,
    show: bool = True,
) -> SearchOutcome | None:
    """Run the search parsed flags describe, on ``problem`` (default: the module
    ``args.problem`` names); with ``show``, print the progress line and the summary.

    Returns the outcome where the search ran (locally, or on MPI rank 0); other MPI ranks
    serve as workers and return None. Raises UsageError on bad input, before any
    evaluation, or once the first results show that the problem does not suit the method
    (what finished is kept), and WorkerError when a worker cannot load the problem.
    """
    from hpsearch.launcher import world_size

    if problem is None:
        source: RunSource = _problem_source(args.problem)
    else:
        try:
            source = run_source(problem)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if world_size(prog) > 1:
        if problem is not None and defined_interactively(problem):
            raise UsageError(
                f"under mpirun every rank must be able to load problem {problem.name!r}, "
                "but its run function is defined in an interactive session: put the problem "
                "in a script or module that every rank runs or imports"
            )
        return _run_mpi(method, args, prog, problem, source, show)
    problem, lock, search = _prepare(method, args, problem, show)
    with lock:  # until best.json is written, whatever happens
        return _run_local(args, problem, source, search, show)


def _problem_source(spec: str) -> str:
    """The name worker processes import the problem by (an absolute path for a file)."""
    return os.path.abspath(spec) if spec.endswith(".py") else spec


def _run_mpi(
    method: Method,
    args: argparse.Namespace,
    prog: str,
    problem: Problem | None,
    source: RunSource,
    show: bool,
) -> SearchOutcome | None:
    from hpsearch.evaluators import mpi

    comm = mpi.world()
    if comm.rank != mpi.MASTER:
        mpi.serve(
            comm,
            source,
            args.eval_timeout,
            isolation=not args.no_isolation,
            gpus_per_node=args.gpus_per_node,
            threads_per_worker=args.threads_per_worker,
        )
        return None
    try:
        try:
            problem, lock, search = _prepare(method, args, problem, show)
        except UsageError:
            mpi.synchronise_start(comm)
            mpi.release_workers(comm)
            raise
        with lock:  # until the workers are released and best.json is written
            mpi.synchronise_start(comm)
            with mpi.MPIEvaluator(comm, interruptible=not args.no_isolation) as evaluator:
                outcome = search(evaluator)
            report(outcome, args.output, problem.space, show)
        return outcome
    except (UsageError, WorkerError):  # the workers were released on the way out
        raise
    except BaseException:
        # an unexpected error on the master must not leave the workers waiting forever
        traceback.print_exc()
        sys.stderr.flush()
        comm.Abort(1)
        raise


def _prepare(
    method: Method, args: argparse.Namespace, problem: Problem | None, show: bool
) -> tuple[Problem, OutputLock, SearchRunner]:
    """Check the input and restore the search state; return the problem (``problem``, or the
    one ``args.problem`` names), the lock held on the output directory (the caller releases
    it once the search has written its last file) and a function running the search on an
    evaluator. Raises UsageError on bad input, before any evaluation starts, and then holds
    no lock."""
    from hpsearch.output_lock import OutputLock

    try:
        _check_output(args.output, args.resume)
        problem = problem or load_problem(args.problem)
        lock = OutputLock(args.output)  # before anything in the directory is read or written
    except (ProblemLoadError, ValueError) as err:
        raise UsageError(str(err)) from None
    try:
        return problem, lock, _restore(method, args, problem, show)
    except (ProblemLoadError, ValueError) as err:
        lock.abandon()
        raise UsageError(str(err)) from None
    except UsageError:
        lock.abandon()
        raise
    except BaseException:
        lock.release()
        raise


def _restore(
    method: Method, args: argparse.Namespace, problem: Problem, show: bool
) -> SearchRunner:
    """Restore the search state in ``args.output``: a function running the search on an
    evaluator."""
    from hpsearch.loop import Progress, Search
    from hpsearch.results import ResultsExist, ResultsLog
    from hpsearch.search.base import UnsuitedProblem
    from hpsearch.search_record import (
        SearchMismatch,
        resume_record,
        search_record,
        write_search,
    )

    record = search_record(method.name, method.parameters(args), problem, args.seed)
    if args.resume:
        try:
            record = resume_record(args.output, record)
        except SearchMismatch as err:
            raise UsageError(f"--resume: {err}") from None
    optimizer = method.build(problem, args)
    try:
        results_log = ResultsLog(args.output, problem.space, resume=args.resume)
    except ResultsExist as err:
        raise UsageError(
            f"{err.path} exists: pass --resume to continue it or choose another --output"
        ) from None
    # written once results.csv is known to be this search's, never over another's record
    write_search(args.output, record)
    rerun = results_log.unfinished_jobs()

    def search(evaluator: Evaluator) -> SearchOutcome:
        progress = Progress(args.max_evals, evaluator.n_workers) if show else None
        try:
            return Search(
                optimizer,
                evaluator,
                results_log,
                args.max_evals,
                args.timeout,
                args.grace,
                progress,
                rerun,
                args.keep_checkpoints,
            ).run()
        except UnsuitedProblem as err:
            raise UsageError(str(err)) from None
        finally:
            results_log.close()

    return search


def _run_local(
    args: argparse.Namespace,
    problem: Problem,
    source: RunSource,
    search: SearchRunner,
    show: bool,
) -> SearchOutcome:
    from hpsearch.evaluators import ProcessEvaluator, SerialEvaluator
    from hpsearch.placement import thread_environment

    evaluator: Evaluator
    if args.no_isolation:
        assert problem.run is not None
        evaluator = SerialEvaluator(problem.run, args.eval_timeout)
    else:
        threads = args.threads_per_worker or max(1, (os.cpu_count() or 1) // args.workers)
        evaluator = ProcessEvaluator(
            source, args.workers, args.eval_timeout, thread_environment(threads)
        )
    with evaluator:
        outcome = search(evaluator)
    report(outcome, args.output, problem.space, show)
    return outcome


def report(outcome: SearchOutcome, output_dir: str, space: Space, show: bool = True) -> None:
    """Write ``best.json`` beside results.csv; with ``show``, print the end-of-search
    summary."""
    import numpy as np

    from hpsearch.results import load_results
    from hpsearch.search_record import best_job_id, write_best

    say = print if show else _silent
    if math.isnan(outcome.active_utilisation):  # a resumed search with nothing left to run
        busy = "no evaluation ran"
    else:
        busy = (
            f"workers busy {outcome.utilisation:.1%} of the wall time, "
            f"{outcome.active_utilisation:.1%} from the first start to the last end "
            "(the report's utilisation)"
        )
    say(
        f"finished {outcome.n_finished} evaluations ({outcome.n_failed} failed) in "
        f"{outcome.wall_time:.1f} s, stopped by {outcome.stopped_by}; {busy}"
    )
    df = load_results(output_dir, space)
    latency = df["handout_latency"].dropna().to_numpy()
    if len(latency):
        say(
            f"hand-out latency (report to next job): median {1e3 * np.median(latency):.2f} ms, "
            f"99th percentile {1e3 * np.percentile(latency, 99):.2f} ms"
        )
    if outcome.best_config is None or outcome.best_objective is None:
        say("no evaluation succeeded")
    else:
        job_id = best_job_id(df, outcome.best_config, outcome.best_objective, space)
        write_best(output_dir, outcome.best_objective, outcome.best_config, job_id)
        say(f"best objective {outcome.best_objective:.6g} with {json.dumps(outcome.best_config)}")
    say(f"results written to {outcome.results_path}")


def _silent(*_: object) -> None:
    """Print nothing (the summary of a search asked to be quiet)."""


def console_main(argv: Sequence[str] | None = None) -> int:
    """The ``hpsearch`` console script: ``hpsearch <method> [options]``, ``hpsearch report``,
    ``hpsearch simulate`` and ``hpsearch ensemble``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        from hpsearch.report import main as report_main

        return report_main(argv[1:], prog="hpsearch report")
    if argv and argv[0] == "simulate":
        from hpsearch.simulate import main as simulate_main

        return simulate_main(argv[1:], prog="hpsearch simulate")
    if argv and argv[0] == "ensemble":
        from hpsearch.ensemble import main as ensemble_main

        return ensemble_main(argv[1:], prog="hpsearch ensemble")
    names = method_names()
    if not argv or argv[0] not in names:
        print(
            f"usage: hpsearch {{{','.join([*names, 'report', 'simulate', 'ensemble'])}}} [options]   "
            "(hpsearch <command> --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return main(argv[0], argv[1:], prog=f"hpsearch {argv[0]}")
