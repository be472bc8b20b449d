"""Shared fixtures: the site built from scratch, once per test run, and small throwaway projects."""

import functools
import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from static_server import serve

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))  # the local extensions, for their unit tests
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


@pytest.fixture(scope="session")
def site(request, tmp_path_factory) -> Build:
    if built := request.config.getoption("--built-site"):
        return Build(0, "", Path(built).resolve())
    return clean_build(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="session")
def site_rebuilt(tmp_path_factory) -> Build:
    """A second clean build, to compare with the first."""
    return clean_build(tmp_path_factory.mktemp("site-again"))


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


@functools.cache
def run_script(name: str) -> str:
    """Run code/<name>.py from the repository root as a reader would, warnings as errors, once a session."""
    done = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "code" / f"{name}.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"code/{name}.py failed:\n{done.stderr}"
    assert "Warning" not in done.stdout + done.stderr, f"code/{name}.py printed a warning"
    return done.stdout


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


def section(out: str, title: str) -> str:
    """The lines a script prints under its ``== title`` header, up to the next header."""
    return out.split(f"== {title}")[1].split("\n== ")[0]
