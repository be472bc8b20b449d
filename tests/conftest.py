"""Shared fixtures: the site built from scratch, once per test run, and small throwaway projects."""

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))  # the local extensions, for their unit tests


@dataclass
class Build:
    returncode: int
    log: str
    html: Path

    def page(self, docname: str) -> str:
        return (self.html / f"{docname}.html").read_text(encoding="utf8")


def sphinx_build(confdir: Path, srcdir: Path, outdir: Path, *options: str) -> Build:
    """Run a strict HTML build (as `nox -s docs` does) in a subprocess and keep its whole log."""
    command = [sys.executable, "-m", "sphinx", "-c", str(confdir), "-W", "--keep-going", "-n", "-b", "html"]
    done = subprocess.run(
        [*command, *options, str(srcdir), str(outdir)], capture_output=True, text=True, timeout=1200
    )
    return Build(done.returncode, done.stdout + done.stderr, outdir)


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Build:
    """The real site, built in parallel with an empty execution cache, so every cell runs."""
    work = tmp_path_factory.mktemp("site")
    return sphinx_build(
        ROOT, DOCS, work / "html", "-j", "auto", "-D", f"nb_execution_cache_path={work / 'cache'}"
    )


@pytest.fixture
def make_project(tmp_path):
    """A copy of the real configuration and extensions with the given pages: a project to break."""

    def make(pages: dict[str, str]) -> Path:
        shutil.copy(ROOT / "conf.py", tmp_path / "conf.py")
        shutil.copytree(DOCS / "_ext", tmp_path / "docs" / "_ext")
        shutil.copytree(DOCS / "_static", tmp_path / "docs" / "_static")
        for name, text in pages.items():
            (tmp_path / "docs" / name).write_text(text, encoding="utf8")
        return tmp_path

    return make
