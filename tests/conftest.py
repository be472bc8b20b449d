"""Shared fixtures: the site built from scratch, once per test run, and small throwaway projects.

pytest-xdist runs the tests in several processes (``nox -s tests`` passes ``-n auto``), each with its own
session fixtures. What is costly to make, the build, the readers' virtualenv and notebook runs, and each
script's run, is made once a run all the same: the first process that needs it makes it, under a lock,
and records it in the run's folder; the others wait for it and read the record (:func:`once_per_run`).
"""

import importlib
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import notebook_runner
import pytest
from bs4 import BeautifulSoup
from filelock import FileLock
from static_server import serve

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))  # the local extensions, for their unit tests
from kernel_history import ipython_dir_without_history  # noqa: E402
from strict_execution import ANSI_ESCAPE  # noqa: E402

# Every page of the site, by its Sphinx name.
PAGES = sorted(path.relative_to(DOCS).with_suffix("").as_posix() for path in DOCS.glob("**/*.md"))

# What every page starts with (see docs/page-template.md): it makes MyST-NB execute the page.
FRONT_MATTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

"""


@dataclass
class Build:
    returncode: int
    log: str
    html: Path

    def page(self, docname: str) -> str:
        return (self.html / f"{docname}.html").read_text(encoding="utf8")

    def soup(self, docname: str) -> BeautifulSoup:
        return BeautifulSoup(self.page(docname), "html.parser")

    def outputs(self, docname: str) -> list[str]:
        """The text of every cell output on the page, in order."""
        cells = self.soup(docname).select("div.cell:has(div.cell_output)")
        return [cell.select_one("div.cell_output").get_text() for cell in cells]

    def output_with(self, docname: str, text: str) -> str:
        """The one cell output on the page that contains ``text``."""
        found = [output for output in self.outputs(docname) if text in output]
        assert len(found) == 1, f"{text!r} is in {len(found)} outputs of {docname}"
        return found[0]

    def notebook(self, docname: str) -> nbformat.NotebookNode:
        """MyST-NB writes each page as the notebook it executed into jupyter_execute/, beside the HTML."""
        return nbformat.read(self.html.parent / "jupyter_execute" / f"{docname}.ipynb", as_version=4)


def sphinx_build(confdir: Path, srcdir: Path, outdir: Path, *options: str) -> Build:
    """Run a strict HTML build (as `nox -s docs` does) in a subprocess and keep its whole log."""
    command = [sys.executable, "-m", "sphinx", "-c", str(confdir), "-W", "--keep-going", "-n", "-b", "html"]
    done = subprocess.run(
        [*command, *options, str(srcdir), str(outdir)], capture_output=True, text=True, timeout=1200
    )
    return Build(done.returncode, done.stdout + done.stderr, outdir)


# Sphinx's own messages. The kernels' log lines reach the build log too (they write to the stderr they
# inherit: "[IPKernelApp] WARNING | ..."), and a kernel on a loaded machine may log an error of its own.
SPHINX_LEVELS = "WARNING|ERROR|CRITICAL"


def sphinx_messages(log: str, levels: str = SPHINX_LEVELS) -> list[str]:
    """The lines of a build log where Sphinx reports at one of ``levels`` (``page.md:22: ERROR: ...``),
    read without colour codes: a message without a location starts with one (``\\x1b[91mWARNING: ``)."""
    message = re.compile(rf"\b({levels}): ")
    return [line for line in ANSI_ESCAPE.sub("", log).splitlines() if message.search(line)]


def clean_build(work: Path) -> Build:
    """The real site, built in parallel with an empty execution cache, so every cell runs."""
    cache = f"nb_execution_cache_path={work / 'cache'}"
    return sphinx_build(ROOT, DOCS, work / "html", "-j", "auto", "-D", cache)


def pytest_addoption(parser):
    parser.addoption(
        "--built-site",
        metavar="HTML_DIR",
        help="test this built site, not a fresh build (for page tests; its log and cache are not checked)",
    )


@pytest.fixture(scope="session", autouse=True)
def kernels_without_history(tmp_path_factory) -> Iterator[None]:
    """The kernels this run starts, beside each other (builds', readers'), keep no IPython history: one
    that collides with another in the shared history prints an error into a cell's output (see
    docs/_ext/kernel_history.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IPYTHONDIR", str(ipython_dir_without_history(tmp_path_factory.mktemp("ipython"))))
        yield


def run_folder(tmp_path_factory) -> Path:
    """The folder of the whole test run: pytest-xdist gives each process a folder of its own inside it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


def once_per_run(folder: Path, name: str, make):
    """What ``make(folder / name)`` returns (JSON), made by the first process of the run that asks for it
    and read from its record by the others, which wait for it meanwhile."""
    record = folder / f"{name}.json"
    with FileLock(folder / f"{name}.lock"):
        if not record.is_file():
            record.write_text(json.dumps(make(folder / name)), encoding="utf8")
        return json.loads(record.read_text(encoding="utf8"))


@pytest.fixture(scope="session")
def site(request, tmp_path_factory) -> Build:
    if built := request.config.getoption("--built-site"):
        return Build(0, "", Path(built).resolve())

    def build(work: Path) -> dict:
        done = clean_build(work)
        return {"returncode": done.returncode, "log": done.log, "html": str(done.html)}

    made = once_per_run(run_folder(tmp_path_factory), "site", build)
    return Build(made["returncode"], made["log"], Path(made["html"]))


CONF = runpy.run_path(str(ROOT / "conf.py"))
# Time limits of the readers' notebooks, which catch a hang, not a slow machine: a cell may take twice the
# build's limit (two notebooks run at once, beside the rest of the machine's work), a notebook 15 minutes
# (the longest page ran for 2 minutes in the build), and the install into a new virtualenv 15 minutes
# (5 minutes on 2 cores busy with other work).
READER_CELL_TIMEOUT = 2 * CONF["nb_execution_timeout"]
READER_NOTEBOOK_TIMEOUT = 900
READER_INSTALL_TIMEOUT = 900


@dataclass
class ReaderRun:
    notebook: nbformat.NotebookNode | None  # as executed, up to where it stopped; None if it never started
    problem: str | None  # what went wrong, naming the cell (see notebook_runner.problem)


@pytest.fixture(scope="session", autouse=True)
def reader_virtualenv_install(request, tmp_path_factory) -> Iterator[Future | None]:
    """Starts the virtualenv the readers' notebooks run on (notebook_runner.base_virtualenv) with the
    session, in a thread, when a test of the session needs it: it installs while the site builds (pip
    mostly waits for the disk and the network, the build for the CPU)."""
    if not any("reader_virtualenv" in item.fixturenames for item in request.session.items):
        yield None
        return
    from reader_notebooks import install_cell, pins

    requirements = (ROOT / "requirements.txt").read_text(encoding="utf8")
    pinned = pins(requirements)
    # Jupyter's kernel, as a reader has it, at the build's versions: they format the outputs.
    kernel = [f"{name}=={pinned[name]}" for name in ["ipykernel", "ipython"]]
    # The install cell every notebook starts with; a page's own additions go into its own virtualenv.
    install = install_cell(requirements, CONF["reader_notebooks_packages"])

    def make(folder: Path) -> str:
        return str(notebook_runner.base_virtualenv(folder, kernel, install, READER_INSTALL_TIMEOUT))

    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(once_per_run, run_folder(tmp_path_factory), "reader-virtualenv", make)


@pytest.fixture(scope="session")
def reader_virtualenv(reader_virtualenv_install) -> Path:
    """A new virtualenv with Jupyter's kernel, in which the install cell of the notebooks has run."""
    return Path(reader_virtualenv_install.result())


@pytest.fixture(scope="session")
def reader_runs(request, site, reader_virtualenv, tmp_path_factory) -> dict[str, ReaderRun]:
    """The notebooks a reader downloads from the site (``_sources/<page>.ipynb``), each run top to bottom
    in a virtualenv of its own with only what its install cell installs (tests/notebook_runner.py), as
    many at a time as there are cores: those of the pages that this session's tests ask about."""
    assert site.returncode == 0, site.log
    asked = [item for item in request.session.items if "reader_runs" in item.fixturenames]
    docnames = sorted({item.callspec.params["docname"] for item in asked})

    def run(work: Path, docname: str) -> list:
        virtualenv, out = work / docname / "venv", work / docname / f"{docname}.ipynb"
        notebook_runner.overlay_virtualenv(virtualenv, reader_virtualenv)
        notebook = site.html / "_sources" / f"{docname}.ipynb"
        problem = notebook_runner.run(notebook, virtualenv, out, READER_CELL_TIMEOUT, READER_NOTEBOOK_TIMEOUT)
        return [str(out) if out.is_file() else None, problem]

    def run_all(work: Path) -> dict:
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            return dict(zip(docnames, pool.map(lambda docname: run(work, docname), docnames), strict=True))

    made = once_per_run(run_folder(tmp_path_factory), "reader-runs", run_all)
    return {
        docname: ReaderRun(nbformat.read(out, as_version=4) if out else None, problem)
        for docname, (out, problem) in made.items()
    }


@pytest.fixture
def make_project(tmp_path):
    """A copy of the real configuration and extensions with the given pages: a project to break."""

    def make(pages: dict[str, str]) -> Path:
        shutil.copy(ROOT / "conf.py", tmp_path / "conf.py")
        shutil.copytree(DOCS / "_ext", tmp_path / "docs" / "_ext")
        shutil.copytree(DOCS / "_static", tmp_path / "docs" / "_static")
        shutil.copytree(DOCS / "_templates", tmp_path / "docs" / "_templates")
        with (tmp_path / "conf.py").open("a", encoding="utf8") as conf:
            conf.write("\npage_description_required = False  # throwaway pages need no meta description\n")
        for name, text in pages.items():
            (tmp_path / "docs" / name).write_text(text, encoding="utf8")
        return tmp_path

    return make


@pytest.fixture(scope="session")
def served_site(site) -> Iterator[str]:
    """The clean build served on 127.0.0.1 with gzip, as a static host serves it; yields its base URL."""
    assert site.returncode == 0, site.log
    with serve(site.html) as url:
        yield url


SCRIPT_RUNS: Path  # where run_script records each run: set at the start of the session, below


@pytest.fixture(scope="session", autouse=True)
def script_runs(tmp_path_factory) -> None:
    global SCRIPT_RUNS
    SCRIPT_RUNS = run_folder(tmp_path_factory)


def run_script(name: str) -> str:
    """Run code/<name>.py from the repository root as a reader would, warnings as errors, once a run."""

    def run(_: Path) -> list:
        done = subprocess.run(
            [sys.executable, "-W", "error", str(ROOT / "code" / f"{name}.py")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return [done.returncode, done.stdout, done.stderr]

    returncode, stdout, stderr = once_per_run(SCRIPT_RUNS, f"script-{name}", run)
    assert returncode == 0, f"code/{name}.py failed:\n{stderr}"
    assert "Warning" not in stdout + stderr, f"code/{name}.py printed a warning"
    return stdout


def import_script(name: str):
    """code/<name>.py imported as a module (code/ on the path, so it can import the scripts beside it)."""
    sys.path.insert(0, str(ROOT / "code"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "code"))


def floats_after(label: str, text: str) -> list[float]:
    """Every number printed right after ``label``, in order."""
    return [float(value) for value in re.findall(re.escape(label) + r"\s*(-?\d[\d.]*(?:e[-+]?\d+)?)", text)]


def assert_no_machine_paths(site: Build, page: str) -> None:
    """No output of ``page`` names a temporary folder or a memory address, and none but an expected
    error's (whose traceback names the libraries' files) names site-packages or /tmp."""
    folder = re.compile(re.escape(tempfile.gettempdir()) + r"/tmp\w{8}\b")  # tempfile's folder names
    for cell in site.soup(page).select("div.cell:has(div.cell_output)"):
        output = cell.select_one("div.cell_output").get_text()
        assert not folder.search(output) and not re.search(r"0x[0-9a-f]{6,}", output)
        if "tag_raises-exception" not in cell["class"]:
            assert "site-packages" not in output and "/tmp" not in output


def written_program(page: str) -> str:
    """The file a page writes with ``%%writefile {WORKER}``: the body of that cell, as a notebook runs it."""
    text = (DOCS / f"{page}.md").read_text(encoding="utf8")
    (body,) = re.findall(r"%%capture\n%%writefile \{WORKER\}\n(.*?)\n```\n", text, re.DOTALL)
    return body + "\n"


def rank_output(text: str, rank: int) -> str:
    """The lines that PyTorch rank ``rank`` printed, from a script's ``rank N | line`` lines."""
    prefix = f"rank {rank} | "
    return "\n".join(line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix))


def section(out: str, title: str) -> str:
    """The lines a script prints under its ``== title`` header, up to the next header."""
    return out.split(f"== {title}")[1].split("\n== ")[0]
