"""Build-speed benchmark (`nox -s bench`): how long the builds a contributor waits for take.

On a copy of the repository, for -j 1 and -j auto: a cold build (empty execution cache), a rebuild with
nothing changed, a rebuild after a prose-only edit, and a rebuild after editing one code cell; it counts
the pages each build executed, reads each page's execution time from MyST-NB's log, checks the targets
and writes the table into README.md between its "build-speed" markers. Each warm rebuild is timed
WARM_REPEATS times and its median reported: one run on a shared machine can be off by half a second.

Targets: nothing changed < 3 s; a prose edit executes no page and takes < 5 s; a code edit executes only
its page; a cold build <= 1.2 * (sum of the pages' execution times / cores) + 15 s.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EDITED_PAGE = "jax-state"
EXECUTED = re.compile(r"docs/([\w/-]+)\.md: Executed notebook in ([\d.]+) seconds")
CODE_EDIT = f"one code cell edited ({EDITED_PAGE})"
WARM_REPEATS = 3
BEGIN, END = "<!-- build-speed:begin -->", "<!-- build-speed:end -->"


def build(project: Path, jobs: str) -> tuple[float, dict[str, float]]:
    """One strict build of the copy; returns its wall time and {page: execution seconds} it ran."""
    command = [sys.executable, "-m", "sphinx", "-c", ".", "-W", "--keep-going", "-n", "-j", jobs]
    start = time.perf_counter()
    done = subprocess.run([*command, "docs", "_build/html"], cwd=project, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"the build failed:\n{done.stdout}\n{done.stderr}")
    log = done.stdout + done.stderr
    return seconds, {page: float(runtime) for page, runtime in EXECUTED.findall(log)}


def median_build(project: Path, jobs: str, edit) -> tuple[float, dict[str, float]]:
    """WARM_REPEATS builds, each after ``edit()``: the median time, and the pages the last one executed."""
    times = []
    for _ in range(WARM_REPEATS):
        edit()
        seconds, executed = build(project, jobs)
        times.append(seconds)
    return statistics.median(times), executed


def edit_prose(page: Path) -> None:
    page.write_text(page.read_text() + "\nOne more sentence of prose.\n")


def edit_code(page: Path) -> None:
    text = page.read_text()
    cell = "```{code-cell} ipython3\n"
    position = text.index(cell) + len(cell)
    page.write_text(text[:position] + "# an edited cell\n" + text[position:])


def measure(jobs: str) -> tuple[list[tuple[str, float, dict]], dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        for name in ["conf.py", "docs", "code"]:
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
            copy(ROOT / name, project / name)
        page = project / "docs" / f"{EDITED_PAGE}.md"
        rows = []
        cold_seconds, runtimes = build(project, jobs)
        rows.append(("cold build", cold_seconds, runtimes))
        rows.append(("nothing changed", *median_build(project, jobs, lambda: None)))
        rows.append(("prose-only edit", *median_build(project, jobs, lambda: edit_prose(page))))
        rows.append((CODE_EDIT, *median_build(project, jobs, lambda: edit_code(page))))
        return rows, runtimes


def check_targets(rows, runtimes) -> list[str]:
    by_name = {name: (seconds, executed) for name, seconds, executed in rows}
    cores = os.cpu_count() or 1
    cold_limit = 1.2 * sum(runtimes.values()) / cores + 15
    code_row = by_name[CODE_EDIT]
    checks = [
        ("nothing changed < 3 s", by_name["nothing changed"][0] < 3),
        ("prose edit executes no page", not by_name["prose-only edit"][1]),
        ("prose edit < 5 s", by_name["prose-only edit"][0] < 5),
        ("code edit executes only its page", set(code_row[1]) == {EDITED_PAGE}),
        (f"cold build <= {cold_limit:.1f} s", by_name["cold build"][0] <= cold_limit),
    ]
    return [f"{'met' if ok else 'MISSED'}: {name}" for name, ok in checks]


def main() -> None:
    lines = [
        f"Measured with `nox -s bench` on {os.cpu_count()} cores; warm rebuilds: median of {WARM_REPEATS}.",
        "",
    ]
    lines += ["| build | -j | seconds | pages executed |", "| --- | --- | --- | --- |"]
    verdicts, page_times = [], {}
    for jobs in ["1", "auto"]:
        rows, runtimes = measure(jobs)
        page_times = page_times or runtimes
        for name, seconds, executed in rows:
            lines.append(f"| {name} | {jobs} | {seconds:.1f} | {len(executed)} |")
        verdicts += [f"-j {jobs}: {verdict}" for verdict in check_targets(rows, runtimes)]
    lines += ["", "| page | execution seconds |", "| --- | --- |"]
    lines += [f"| {page} | {seconds:.1f} |" for page, seconds in sorted(page_times.items())]
    lines += ["", *[f"- {verdict}" for verdict in verdicts]]
    table = "\n".join(lines)
    print(table)
    text = README.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    README.write_text(text[:start] + "\n" + table + "\n" + text[end:])


if __name__ == "__main__":
    main()
