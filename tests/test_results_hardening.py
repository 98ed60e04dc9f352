"""What a search writes survives numpy values, choices of any type, writes cut short, two
searches aimed at one directory, and empty or damaged files, and resumes from them."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from hpsearch import Categorical, Problem, load_results
from hpsearch.cli import main
from hpsearch.evaluation import CANCELLED, DONE, Job, Outcome, Result
from hpsearch.results import ResultsError, ResultsLog
from hpsearch.simulate import main as simulate_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_problem(path, body: str) -> str:
    path.write_text("import numpy as np\nfrom hpsearch import Problem\n\n" + body)
    return str(path)


def only_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def result(job_id, config, objective=0.5, status=DONE, metrics=None):
    job = Job(job_id, config, t_submit=1000.0)
    outcome = Outcome(status, objective, metrics or {}, "", t_start=1001.0, t_end=1003.5)
    return Result(job, outcome, worker=1, host="node1")


def first(choices):
    return lambda config: config["c"] == choices[0]


def space_of(*dimensions) -> Problem:
    problem = Problem("p")
    for name, spec in dimensions:
        problem.add_hyperparameter(name, spec)
    return problem


NUMPY_PROBLEM = """
problem = Problem("numpy")
problem.add_hyperparameter("lr", [np.float64(0.1), np.float64(0.01)])
problem.add_hyperparameter("units", [np.int64(32), np.int64(64)])
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config):
    values = np.array([config["x"], config["lr"], config["units"] / 100])
    return {"objective": np.mean(values), "acc": np.float32(0.5), "n": np.int64(3),
            "loss": np.float64(0.25)}
"""


def test_numpy_values_are_written_as_plain_numbers(tmp_path):
    out = str(tmp_path / "out")
    argv = ["--problem", write_problem(tmp_path / "np_problem.py", NUMPY_PROBLEM)]
    argv += ["--output", out, "--no-isolation", "--seed", "1"]
    assert main("rs", [*argv, "--max-evals", "3"]) == 0
    for name in ("results.csv", "submitted.jsonl"):
        assert "np." not in (tmp_path / "out" / name).read_text()
    for line in (tmp_path / "out" / "submitted.jsonl").read_text().splitlines():
        config = json.loads(line)["config"]
        assert type(config["units"]) is int and type(config["lr"]) is float
    assert main("rs", [*argv, "--max-evals", "5", "--resume"]) == 0
    df = load_results(out)
    assert len(df) == 5 and (df["status"] == DONE).all()
    for column in ("objective", "p:lr", "p:units", "m:acc", "m:n", "m:loss"):
        assert pd.api.types.is_numeric_dtype(df[column]), column
    assert set(df["m:loss"]) == {0.25} and set(df["m:n"]) == {3}


@pytest.mark.parametrize(
    "choices",
    [
        ["32", "64"],
        ["True", "False"],
        ["", "a"],
        ["1.0", "1e3", "nan", "NA"],
        [1, "a", 2.5, True],
        [1, "1", 1.0],
        [True, "True", 0],
        [" x", "x "],
    ],
)
def test_choices_resume_with_the_type_their_dimension_declares(tmp_path, choices):
    problem = space_of(("c", choices), ("o", (0, 9)))
    problem.add_hyperparameter(Categorical("k", choices=[16, "16"], condition=first(choices)))
    space = problem.space
    configs = [space.validate({"c": c, "o": i, "k": "16"}) for i, c in enumerate(choices)]
    log = ResultsLog(str(tmp_path), space)
    log.journal([Job(i, c) for i, c in enumerate(configs)])
    log.write([result(i, c, 0.1 * i) for i, c in enumerate(configs)])
    log.close()
    resumed = ResultsLog(str(tmp_path), space, resume=True)
    finished, _ = resumed.finished()
    assert [[(k, type(v), v) for k, v in c.items()] for c in finished] == [
        [(k, type(v), v) for k, v in c.items()] for c in configs
    ]
    assert resumed.unfinished_jobs() == []
    resumed.close()
    # a reader given the space sees the same values
    df = load_results(str(tmp_path), space)
    assert [type(v) for v in df["p:c"]] == [type(c) for c in choices]


MIXED_PROBLEM = """
problem = Problem("mixed")
problem.add_hyperparameter("batch", ["32", "64"])
problem.add_hyperparameter("flag", ["True", "False"])
problem.add_hyperparameter("prefix", ["", "pre"])
problem.add_hyperparameter("mixed", [1, "a", 2.5, True])
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config):
    assert isinstance(config["batch"], str) and isinstance(config["flag"], str)
    return config["x"] + len(config["prefix"])
"""


def test_a_search_with_string_choices_resumes(tmp_path):
    out = str(tmp_path / "out")
    argv = ["--problem", write_problem(tmp_path / "mixed.py", MIXED_PROBLEM)]
    argv += ["--output", out, "--no-isolation", "--seed", "2"]
    assert main("rs", [*argv, "--max-evals", "6"]) == 0
    assert main("rs", [*argv, "--max-evals", "12", "--resume"]) == 0
    df = load_results(out)
    assert len(df) == 12 and (df["status"] == DONE).all()
    best = json.loads((tmp_path / "out" / "best.json").read_text())
    assert best["job_id"] is not None  # found among the rows, read with their types


SLOW_PROBLEM = """
import time

problem = Problem("slow")
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config):
    time.sleep(0.2)
    return config["x"]
"""


def test_one_search_at_a_time_in_an_output_directory(tmp_path, capsys):
    out = str(tmp_path / "out")
    problem_file = write_problem(tmp_path / "slow.py", SLOW_PROBLEM)
    argv = ["--problem", problem_file, "--output", out, "--no-isolation"]
    first = subprocess.Popen(
        [sys.executable, "-m", "hpsearch.rs", *argv, "--max-evals", "300"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        results = tmp_path / "out" / "results.csv"
        deadline = time.monotonic() + 60
        while len(results.read_text().splitlines()) < 3 if results.exists() else True:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.2)
        held_by = f"pid {first.pid} on host {socket.gethostname()}"
        for extra in (["--resume"], []):
            capsys.readouterr()
            assert main("rs", [*argv, "--max-evals", "300", *extra]) == 2
            line = only_line(capsys.readouterr().err)
            assert line.startswith(f"hpsearch.rs: error: --output {out} is in use"), line
            assert held_by in line
        sim = ["rs", "--problem", problem_file, "--workers", "2", "--duration", "fixed:1"]
        assert simulate_main([*sim, "--output", out]) == 2
        line = only_line(capsys.readouterr().err)
        assert f"--output {out} is in use" in line and held_by in line
    finally:
        first.send_signal(signal.SIGKILL)  # a search killed outright leaves no lock behind
        first.wait()
    n_before = len(load_results(out))
    assert main("rs", [*argv, "--max-evals", str(n_before + 3), "--resume"]) == 0
    df = load_results(out)
    assert len(df) >= n_before + 3
    assert df["job_id"].is_unique


def test_a_cut_multi_line_cell_is_recovered_by_records(tmp_path):
    space = space_of(("x", (0.0, 1.0))).space
    log = ResultsLog(str(tmp_path), space)
    jobs = [Job(i, {"x": 0.1 * i}) for i in range(4)]
    log.journal(jobs)
    note = 'first line\nsecond line, "quoted"\nthird line'
    log.write(
        [result(j.job_id, j.config, 0.1 * j.job_id, metrics={"note": note}) for j in jobs[:3]]
    )
    log.close()
    path = tmp_path / "results.csv"
    text = path.read_bytes()
    path.write_bytes(text[: text.rindex(b"second line")])  # killed inside the last row's cell
    assert len(load_results(str(tmp_path))) == 2  # a reader skips the cut row
    resumed = ResultsLog(str(tmp_path), space, resume=True)
    _, objectives = resumed.finished()
    assert objectives == [0.0, 0.1]
    assert [j.job_id for j in resumed.unfinished_jobs()] == [2, 3]
    resumed.write([result(2, jobs[2].config, 0.2, metrics={"note": note})])
    resumed.close()
    df = load_results(str(tmp_path))
    assert list(df["job_id"]) == [0, 1, 2] and list(df["m:note"]) == [note] * 3


def test_a_cut_journal_line_never_gives_its_id_again(tmp_path, caplog):
    space = space_of(("x", (0.0, 1.0))).space
    log = ResultsLog(str(tmp_path), space)
    log.journal([Job(i, {"x": 0.1 * i}) for i in range(3)])
    log.write([result(0, {"x": 0.0})])
    log.close()
    with open(tmp_path / "submitted.jsonl", "a") as f:
        f.write('{"job_id": 3, "config": {"x": 0.')  # killed while journalling job 3
    with caplog.at_level(logging.WARNING):
        resumed = ResultsLog(str(tmp_path), space, resume=True)
    assert [j.job_id for j in resumed.unfinished_jobs()] == [1, 2]
    assert resumed.next_job_id == 4
    assert "submitted.jsonl" in caplog.text and "job 3" in caplog.text
    resumed.close()


def test_a_missing_journal_is_reported_and_no_id_is_reused(tmp_path, caplog):
    space = space_of(("x", (0.0, 1.0))).space
    log = ResultsLog(str(tmp_path), space)
    log.journal([Job(i, {"x": 0.1 * i}) for i in range(6)])
    log.write([result(0, {"x": 0.0}), result(1, {"x": 0.1}, None, CANCELLED)])
    log.steps.write([_report(4)], log.t0)  # job 4 was running and reporting
    log.close()
    os.remove(tmp_path / "submitted.jsonl")
    with caplog.at_level(logging.WARNING):
        resumed = ResultsLog(str(tmp_path), space, resume=True)
    assert resumed.unfinished_jobs() == []
    assert resumed.next_job_id == 5
    assert "submitted.jsonl" in caplog.text
    resumed.close()


def _report(job_id):
    from hpsearch.trial import Report

    return Report(job_id=job_id, step=1, objective=0.5, metrics={}, time=time.time())


def test_done_rows_of_any_width_resume_as_done(tmp_path):
    space = space_of(("x", (0.0, 1.0))).space
    log = ResultsLog(str(tmp_path), space)
    values = [[0.1, 0.2, 0.3], [0.4, 0.5], 0.7, [0.8]]
    log.write([result(i, {"x": 0.1 * i}, v) for i, v in enumerate(values)])
    log.close()
    resumed = ResultsLog(str(tmp_path), space, resume=True)
    assert resumed.finished()[1] == values
    resumed.close()


@pytest.mark.parametrize("header", [False, True], ids=["zero bytes", "header only"])
@pytest.mark.parametrize("journal", [False, True], ids=["", "with a journal"])
def test_resuming_an_empty_search_starts_it(tmp_path, header, journal):
    out = tmp_path / "out"
    argv = ["--problem", write_problem(tmp_path / "slow.py", SLOW_PROBLEM)]
    argv += ["--output", str(out), "--no-isolation"]
    assert main("rs", [*argv, "--max-evals", "0"]) == 0
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    assert len(lines) == 1
    (out / "results.csv").write_text(lines[0] if header else "")
    if journal:  # a job was handed out before the search was killed
        (out / "submitted.jsonl").write_text('{"job_id": 0, "config": {"x": 0.25}}\n')
    assert main("rs", [*argv, "--max-evals", "2", "--resume"]) == 0
    df = load_results(str(out))
    assert sorted(df["job_id"]) == [0, 1] and (df["status"] == DONE).all()
    if journal:
        assert df.loc[df["job_id"] == 0, "p:x"].item() == 0.25


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "is not JSON"),
        ('["job_id", 1]', "is not a JSON object"),
        ('{"job_id": -1, "config": {"x": 0.5}}', "job_id -1 is not a non-negative integer"),
        ('{"job_id": "7", "config": {"x": 0.5}}', "job_id '7' is not a non-negative integer"),
        ('{"job_id": 2.5, "config": {"x": 0.5}}', "job_id 2.5 is not a non-negative integer"),
        ('{"job_id": true, "config": {"x": 0.5}}', "job_id True is not a non-negative integer"),
        ('{"config": {"x": 0.5}}', "has no job_id"),
        ('{"job_id": 7, "config": {"x": 2.0}}', "hyperparameter 'x': value must be"),
        ('{"job_id": 7, "config": {"y": 0.5}}', "unknown hyperparameter(s): y"),
        ('{"job_id": 7, "config": [0.5]}', "config is not a JSON object"),
        ('{"job_id": 7, "config": {"x": 0.5}, "parent": "a"}', "parent 'a' is not"),
    ],
)
def test_a_damaged_journal_is_reported_with_its_line(tmp_path, capsys, line, message):
    out = tmp_path / "out"
    argv = ["--problem", write_problem(tmp_path / "slow.py", SLOW_PROBLEM)]
    argv += ["--output", str(out), "--no-isolation"]
    assert main("rs", [*argv, "--max-evals", "2"]) == 0
    journal = (out / "submitted.jsonl").read_text().splitlines(keepends=True)
    (out / "submitted.jsonl").write_text("".join([journal[0], line + "\n", *journal[1:]]))
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    capsys.readouterr()
    assert main("rs", [*argv, "--max-evals", "4", "--resume"]) == 2
    error = only_line(capsys.readouterr().err)
    assert error.startswith(f"hpsearch.rs: error: {out}/submitted.jsonl line 2: "), error
    assert message in error
    after = {name: (out / name).read_bytes() for name in os.listdir(out) if name in before}
    assert after == before


LINE_BREAK_METRIC = """
problem = Problem("metric")
problem.add_hyperparameter("x", (0.0, 1.0))


def run(config):
    return {"objective": config["x"], "val\\nloss": 2 * config["x"]}
"""


def test_a_metric_name_with_a_line_break_is_one_line_and_resumes(tmp_path):
    out = tmp_path / "out"
    argv = ["--problem", write_problem(tmp_path / "metric.py", LINE_BREAK_METRIC)]
    argv += ["--output", str(out), "--no-isolation", "--seed", "3"]
    assert main("rs", [*argv, "--max-evals", "3"]) == 0
    assert main("rs", [*argv, "--max-evals", "5", "--resume"]) == 0
    assert len((out / "results.csv").read_text().splitlines()) == 6
    df = load_results(str(out))
    assert list(df["job_id"]) == [0, 1, 2, 3, 4]
    assert list(df["m:val loss"]) == list(2 * df["p:x"])


def test_a_header_cell_spanning_lines_is_read_as_the_header(tmp_path):
    space = space_of(("x", (0.0, 1.0))).space
    log = ResultsLog(str(tmp_path), space)
    log.write([result(i, {"x": 0.1 * i}, 0.1 * i, metrics={"val_loss": i}) for i in range(3)])
    log.close()
    path = tmp_path / "results.csv"
    path.write_text(path.read_text().replace("m:val_loss", '"m:val\nloss"', 1))
    resumed = ResultsLog(str(tmp_path), space, resume=True)
    assert resumed.finished()[1] == [0.0, 0.1, 0.2]
    resumed.write([result(3, {"x": 0.3}, 0.3)])
    resumed.close()
    df = load_results(str(tmp_path))
    assert list(df["job_id"]) == [0, 1, 2, 3] and list(df["m:val\nloss"][:3]) == [0, 1, 2]


def test_records_without_a_header_are_never_overwritten(tmp_path):
    space = space_of(("x", (0.0, 1.0))).space
    log = ResultsLog(str(tmp_path), space)
    log.write([result(i, {"x": 0.1 * i}) for i in range(2)])
    log.close()
    path = tmp_path / "results.csv"
    path.write_text("\n" + path.read_text())
    before = path.read_bytes()
    with pytest.raises(ResultsError, match=r"results\.csv: its first line is empty"):
        ResultsLog(str(tmp_path), space, resume=True)
    assert path.read_bytes() == before


def _replace_line(number, line):
    def edit(text):
        lines = text.splitlines(keepends=True)
        lines[number] = line
        return "".join(lines)

    return edit


def _replace_cell(number, column, value):
    def edit(text):
        lines = text.splitlines(keepends=True)
        cells = lines[number].rstrip("\n").split(",")
        cells[lines[0].split(",").index(column)] = value
        lines[number] = ",".join(cells) + "\n"
        return "".join(lines)

    return edit


def _drop_column(column):
    def edit(text):
        lines = text.splitlines()
        index = lines[0].split(",").index(column)
        return "".join(
            ",".join(c for i, c in enumerate(ln.split(",")) if i != index) + "\n" for ln in lines
        )

    return edit


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("results.csv", _replace_cell(2, "job_id", "x7"), "row 2 has job_id 'x7', not a"),
        ("results.csv", _replace_cell(1, "job_id", ""), "row 1 has an empty job_id, not a"),
        ("results.csv", _replace_cell(1, "job_id", "-3"), "row 1 has job_id -3, not a"),
        ("results.csv", _replace_cell(2, "objective", "big"), "objective 'big' is not a number"),
        ("results.csv", lambda t: t + "9,0.5,0.5,DONE,0,h,1,2,3,,,extra\n", "Expected"),
        ("results.csv", lambda t: t.replace("DONE", "D\xffNE", 1), "is not UTF-8"),
        ("results.csv", _drop_column("status"), "has no column 'status'"),
        ("results.csv", _drop_column("job_id"), "has no column 'job_id'"),
        ("results.csv", lambda t: t.replace("worker,host", "host,worker"), "does not start with"),
        ("steps.csv", lambda t: t + "0,1,0.5,0.1,,extra\n", "Expected"),
        ("steps.csv", lambda t: t + "0,1,0.5\xff,0.1,\n", "is not UTF-8"),
    ],
)
def test_a_damaged_results_file_is_reported_with_its_name(tmp_path, capsys, name, edit, message):
    out = tmp_path / "out"
    argv = ["--problem", write_problem(tmp_path / "slow.py", SLOW_PROBLEM)]
    argv += ["--output", str(out), "--no-isolation"]
    assert main("rs", [*argv, "--max-evals", "2"]) == 0
    if name == "steps.csv":
        (out / name).write_text("job_id,step,objective,t,error\n0,1,0.5,0.1,\n")
    path = out / name
    path.write_bytes(edit(path.read_text()).encode("latin-1"))  # "\xff": a byte UTF-8 lacks
    before = {n: (out / n).read_bytes() for n in os.listdir(out) if n != "search.lock"}
    capsys.readouterr()
    assert main("rs", [*argv, "--max-evals", "4", "--resume"]) == 2
    error = only_line(capsys.readouterr().err)
    assert error.startswith(f"hpsearch.rs: error: {path}"), error
    assert message in error, error
    after = {n: (out / n).read_bytes() for n in os.listdir(out) if n in before}
    assert after == before


JOURNAL_TWICE = """
import sys
from hpsearch import Problem
from hpsearch.evaluation import Job
from hpsearch.results import ResultsLog

problem = Problem("p")
problem.add_hyperparameter("x", (0.0, 1.0))
log = ResultsLog(sys.argv[1], problem.space, fsync=sys.argv[2] == "fsync")
log.journal([Job(i, {"x": 0.5}) for i in range(3)])  # two hand-outs
log.journal([Job(3, {"x": 0.25})])
log.close()
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize(("flag", "expected"), [("fsync", 2), ("no-fsync", 0)])
def test_the_journal_reaches_the_disk_once_a_hand_out_when_rows_do(tmp_path, flag, expected):
    trace = tmp_path / "trace"
    out = tmp_path / "out"
    command = [sys.executable, "-c", JOURNAL_TWICE, str(out), flag]
    subprocess.run(
        ["strace", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace), *command],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    calls = [ln for ln in trace.read_text().splitlines() if "submitted.jsonl>" in ln]
    assert len(calls) == expected, calls
    assert len((out / "submitted.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("cut", "named", "next_id"),
    [('{"job_id": 12', None, 3), ('{"job_id": 12 ', None, 3), ('{"job_id": 12 , "con', 12, 13)],
)
def test_a_cut_journal_line_names_only_a_whole_job_id(tmp_path, caplog, cut, named, next_id):
    space = space_of(("x", (0.0, 1.0))).space
    log = ResultsLog(str(tmp_path), space)
    log.journal([Job(i, {"x": 0.1 * i}) for i in range(3)])
    log.close()
    with open(tmp_path / "submitted.jsonl", "a") as f:
        f.write(cut)  # killed while journalling a job whose id may have had more digits
    with caplog.at_level(logging.WARNING):
        resumed = ResultsLog(str(tmp_path), space, resume=True)
    resumed.close()
    assert resumed.next_job_id == next_id
    assert "dropping its last line, cut short" in caplog.text
    assert ("job 12" in caplog.text) == (named is not None)


@pytest.mark.parametrize("command", ["rs", "simulate"])
def test_a_lock_file_that_cannot_be_opened_is_a_usage_error(tmp_path, capsys, command):
    out = tmp_path / "out"
    (out / "search.lock").mkdir(parents=True)  # not a file: opening it fails, even for root
    problem_file = write_problem(tmp_path / "slow.py", SLOW_PROBLEM)
    argv = ["--problem", problem_file, "--output", str(out), "--max-evals", "1"]
    if command == "rs":
        assert main("rs", [*argv, "--no-isolation"]) == 2
    else:
        assert simulate_main(["rs", *argv, "--workers", "1", "--duration", "fixed:1"]) == 2
    line = only_line(capsys.readouterr().err)
    assert f"error: --output {out} cannot be locked: Is a directory" in line, line
    assert os.listdir(out) == ["search.lock"]


REPLACER = """
import fcntl, os, sys, time

path, end = sys.argv[1], time.monotonic() + float(sys.argv[2])
held = None
while time.monotonic() < end:
    fd = os.open(path + ".new", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"the replacer")
    os.replace(path + ".new", path)  # the file at path is locked at every moment
    if held is not None:
        os.close(held)  # the file replaced is unlocked, and at no path
    held = fd
"""


def test_a_lock_file_replaced_while_it_is_locked_lets_no_second_search_in(tmp_path):
    from hpsearch.output_lock import OutputInUse, OutputLock

    out = tmp_path / "out"
    out.mkdir()
    replacer = subprocess.Popen(
        [sys.executable, "-c", REPLACER, str(out / "search.lock"), "4"],
        stdout=subprocess.DEVNULL,
    )
    try:
        while not (out / "search.lock").exists():
            time.sleep(0.01)
        refused = 0
        while replacer.poll() is None:
            try:
                lock = OutputLock(str(out))
            except OutputInUse:
                refused += 1
                continue
            lock.release()
            if replacer.poll() is None:  # the file at the path was locked all along
                pytest.fail(f"locked a file no longer at its path (after {refused} refusals)")
    finally:
        replacer.kill()
        replacer.wait()
    assert refused > 100
