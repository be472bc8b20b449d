"""What a reader gets from a clean build: every page, every output, no error and no warning."""

import re
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from build_paths import strip_build_paths
from conftest import DOCS, PAGES, ROOT, run_script, sphinx_build, sphinx_messages
from strict_execution import ANSI_ESCAPE


def code_cells(build, docname):
    return [cell for cell in build.notebook(docname).cells if cell.cell_type == "code"]


def output_text(output) -> str:
    return ANSI_ESCAPE.sub("", output.get("text") or output.get("data", {}).get("text/plain", ""))


def test_build_succeeds_without_warnings(site):
    assert site.returncode == 0, site.log
    assert not sphinx_messages(site.log), site.log


@pytest.mark.parametrize("docname", PAGES)
def test_page_is_in_the_navigation(site, docname):
    index = site.soup("index")
    linked = {a["href"] for a in index.select("nav.bd-docs-nav a")}
    assert docname == "index" or f"{docname}.html" in linked
    assert site.soup(docname).select_one("article h1")


@pytest.mark.parametrize("docname", PAGES)
def test_every_executed_output_is_on_the_page(site, docname):
    cells = code_cells(site, docname)
    html_cells = site.soup(docname).select("div.cell")
    assert len(html_cells) == len(cells)
    for cell, html in zip(cells, html_cells, strict=True):
        assert cell.execution_count is not None, f"{docname}: a cell did not run:\n{cell.source}"
        for output in cell.outputs:
            data = output.get("data", {})
            if "image/png" in data or "image/svg+xml" in data:
                assert html.select_one("div.cell_output img"), (docname, cell.source)
                continue
            if "text/markdown" in data or "text/html" in data:  # rendered, not shown as its text/plain
                assert html.select_one("div.cell_output").get_text().strip(), (docname, cell.source)
                continue
            text = output_text(output)
            first_line = text.strip().splitlines()[0] if text.strip() else ""
            assert first_line in html.select_one("div.cell_output").get_text(), (docname, cell.source)


@pytest.mark.parametrize("docname", PAGES)
def test_no_error_output_outside_cells_that_expect_one(site, docname):
    """A cell may print an exception it caught on purpose ("TypeError: ..."); none may raise one or
    write to stderr unless it is tagged raises-exception."""
    for cell, html in zip(code_cells(site, docname), site.soup(docname).select("div.cell"), strict=True):
        if "raises-exception" in cell.metadata.get("tags", []):
            continue
        assert not [output for output in cell.outputs if output.output_type == "error"], cell.source
        assert not html.select(".traceback, .stderr"), (docname, html.get_text())
        output = html.select_one("div.cell_output")
        assert "Traceback" not in (output.get_text() if output else ""), (docname, cell.source)


@pytest.mark.parametrize("docname", PAGES)
def test_no_deprecated_api_in_any_output(site, docname):
    for cell in code_cells(site, docname):
        for output in cell.outputs:
            text = output_text(output) + "".join(output.get("traceback", []))
            assert "DeprecationWarning" not in text and "FutureWarning" not in text, (docname, cell.source)


# Outputs that differ from run to run by nature (timings) are tagged so, and only those are skipped.
VARYING = "varying-output"
PINNED = re.compile(r"([A-Za-z0-9._-]+)==(\S+)")


# The file ipykernel runs a cell as, in a folder named by the kernel's process: "/tmp/ipykernel_4374/89.py".
KERNEL_CELL_FILE = re.compile(r"/\S*?/ipykernel_\d+/\d+\.py")


def without_paths(text: str) -> str:
    """What does not depend on the machine, the virtualenv or the kernel that ran the cell."""
    return KERNEL_CELL_FILE.sub("<cell>", strip_build_paths(text, [str(ROOT), str(Path.home())]))


def shown(cell) -> list[tuple]:
    """What a cell's outputs show, however the kernel cut its streams into chunks: each stream's text,
    each result's data, each error's type and message (its traceback is the site's own rendering)."""
    found = []
    for output in cell.outputs:
        if output.output_type == "stream" and found and found[-1][0] == output.name:
            found[-1] = (output.name, found[-1][1] + without_paths(output.text))
        elif output.output_type == "stream":
            found.append((output.name, without_paths(output.text)))
        elif output.output_type == "error":
            found.append(("error", output.ename, without_paths(output.evalue)))
        else:
            data = {kind: without_paths(str(value)) for kind, value in output.data.items()}
            found.append((output.output_type, data))
    return found


def other_versions(install_cell: str) -> list[str]:
    """The packages that the notebook installs at another version than the one the site ran with."""
    return [
        f"{name} {version(name)} (the notebook installs {pinned})"
        for name, pinned in PINNED.findall(install_cell)
        if version(name).split("+")[0] != pinned  # torch 2.13.0+cpu is torch==2.13.0
    ]


@pytest.mark.parametrize("docname", PAGES)
def test_the_downloaded_notebook_run_again_gives_the_outputs_on_the_site(site, reader_runs, docname):
    """The notebook a reader downloads, run in a new virtualenv (the reader_runs fixture), shows what the
    site shows, cell by cell, but for the cells tagged varying-output: the page is what a run gives."""
    published = nbformat.read(site.html / "_sources" / f"{docname}.ipynb", as_version=4)
    if changed := other_versions(published.cells[0].source):
        pytest.skip(f"the site ran with other versions than the notebook installs (a canary): {changed}")
    run = reader_runs[docname]
    assert not run.problem, f"{docname}.ipynb does not run through (test_reader_notebooks.py says where)"
    for index, (cell, again) in enumerate(zip(published.cells[1:], run.notebook.cells[1:], strict=True), 1):
        if cell.cell_type == "code" and VARYING not in cell.metadata.get("tags", []):
            assert shown(again) == shown(cell), f"{docname}.ipynb, cell {index}:\n{cell.source}"


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
        parallel_body = site.soup(docname).select_one("article")
        serial_body = BeautifulSoup(serial.page(docname), "html.parser").select_one("article")
        assert str(parallel_body) == str(serial_body), docname


def test_versions_on_the_landing_page_come_from_the_kernel(site):
    from importlib.metadata import version

    text = site.soup("index").get_text()
    for package in ["jax", "flax", "optax", "torch"]:
        assert re.search(rf"{package}\s+{re.escape(version(package))}", text), package


def guide_pages() -> list[str]:
    """The lessons: the pages of docs/index.md's toctrees but the one captioned "Contributing", in order."""
    index = (DOCS / "index.md").read_text(encoding="utf8")
    toctrees = [part.split("```")[0] for part in index.split("```{toctree}\n")[1:]]
    return [
        line
        for toctree in toctrees
        if ":caption: Contributing\n" not in toctree
        for line in toctree.splitlines()
        if line and not line.startswith(":")
    ]


@pytest.mark.parametrize("docname", [*guide_pages(), "page-template"])
def test_each_guide_page_ends_with_an_exercise_and_its_executed_solution(site, docname):
    exercise = site.soup(docname).select_one("section#exercise")
    assert exercise, f"{docname} has no '## Exercise' section"
    following = exercise.find_next_sibling("section")
    assert following and following["id"] == "summary", "the exercise comes just before the summary"
    task = exercise.select_one("div.admonition.tip > p.admonition-title")
    assert task and task.get_text() == "Exercise"
    solution = exercise.select_one("div.cell.tag_hide-cell details")
    assert solution, "the solution is a cell tagged hide-cell"
    assert solution.select_one("summary .collapsed").get_text() == "Show the solution"
    assert solution.select_one("div.cell_input"), "the solution shows its code"
    output = solution.select_one("div.cell_output")
    assert output and output.get_text().strip(), "the solution prints its result"
    assert not output.select(".traceback, .stderr")


@pytest.mark.parametrize("script", sorted(path.stem for path in (ROOT / "code").glob("*.py")))
def test_scripts_run_on_their_own(script):
    assert run_script(script), f"code/{script}.py printed nothing"


def test_site_pages_are_the_markdown_sources():
    assert PAGES, "no page found"
    assert not list(Path(DOCS).glob("**/*.ipynb")), "pages are MyST markdown; notebooks are generated"
