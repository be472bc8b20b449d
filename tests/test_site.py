"""What a reader gets from a clean build: every page, every output, no error and no warning."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from conftest import DOCS, ROOT, sphinx_build
from strict_execution import ANSI_ESCAPE

PAGES = sorted(path.relative_to(DOCS).with_suffix("").as_posix() for path in DOCS.glob("**/*.md"))


def soup(site, docname):
    return BeautifulSoup(site.page(docname), "html.parser")


def executed_notebook(site, docname):
    """MyST-NB writes each page as the notebook it executed into jupyter_execute/, beside the HTML."""
    return nbformat.read(site.html.parent / "jupyter_execute" / f"{docname}.ipynb", as_version=4)


# Sphinx's own format; the kernel's "[IPKernelApp] WARNING | running over TCP" notice is not one.
SPHINX_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL): ")


def test_build_succeeds_without_warnings(site):
    assert site.returncode == 0, site.log
    assert not SPHINX_PROBLEM.search(site.log), site.log


@pytest.mark.parametrize("docname", PAGES)
def test_page_is_in_the_navigation(site, docname):
    index = soup(site, "index")
    linked = {a["href"] for a in index.select("nav.bd-docs-nav a")}
    assert docname == "index" or f"{docname}.html" in linked
    assert soup(site, docname).select_one("article h1")


@pytest.mark.parametrize("docname", PAGES)
def test_every_executed_output_is_on_the_page(site, docname):
    notebook = executed_notebook(site, docname)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    html_cells = soup(site, docname).select("div.cell")
    assert len(html_cells) == len(code_cells)
    for cell, html in zip(code_cells, html_cells, strict=True):
        assert cell.execution_count is not None, f"{docname}: a cell did not run:\n{cell.source}"
        for output in cell.outputs:
            text = ANSI_ESCAPE.sub("", output.get("text") or output.get("data", {}).get("text/plain", ""))
            first_line = text.strip().splitlines()[0] if text.strip() else ""
            assert first_line in html.select_one("div.cell_output").get_text(), (docname, cell.source)


@pytest.mark.parametrize("docname", PAGES)
def test_no_error_output_outside_cells_that_expect_one(site, docname):
    for cell in soup(site, docname).select("div.cell"):
        if "tag_raises-exception" in cell["class"]:
            continue
        output = cell.select_one("div.cell_output")
        text = output.get_text() if output else ""
        assert not cell.select(".traceback, .stderr"), (docname, cell.get_text())
        assert "Traceback" not in text and "Error" not in text, (docname, text)


def test_parallel_and_serial_builds_give_the_same_pages(site, tmp_path):
    """A serial build from the parallel build's cache writes the same page bodies."""
    serial = sphinx_build(
        ROOT,
        DOCS,
        tmp_path / "html",
        "-j",
        "1",
        "-D",
        f"nb_execution_cache_path={site.html.parent / 'cache'}",
    )
    assert serial.returncode == 0, serial.log
    for docname in PAGES:
        parallel_body = soup(site, docname).select_one("article")
        serial_body = BeautifulSoup(serial.page(docname), "html.parser").select_one("article")
        assert str(parallel_body) == str(serial_body), docname


def test_versions_on_the_landing_page_come_from_the_kernel(site):
    from importlib.metadata import version

    text = soup(site, "index").get_text()
    for package in ["jax", "flax", "optax", "torch"]:
        assert re.search(rf"{package}\s+{re.escape(version(package))}", text), package


def test_scripts_run_on_their_own():
    for script in sorted((ROOT / "code").glob("*.py")):
        done = subprocess.run([sys.executable, "-W", "error", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script.name}:\n{done.stderr}"
        assert "Warning" not in done.stdout + done.stderr, script.name


def test_site_pages_are_the_markdown_sources():
    assert PAGES, "no page found"
    assert not list(Path(DOCS).glob("**/*.ipynb")), "pages are MyST markdown; notebooks are generated"
