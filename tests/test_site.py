"""What a reader gets from a clean build: every page, every output, no error and no warning."""

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import DOCS, ROOT, run_script, sphinx_build
from strict_execution import ANSI_ESCAPE

PAGES = sorted(path.relative_to(DOCS).with_suffix("").as_posix() for path in DOCS.glob("**/*.md"))


def soup(site, docname):
    return BeautifulSoup(site.page(docname), "html.parser")


def code_cells(build, docname):
    return [cell for cell in build.notebook(docname).cells if cell.cell_type == "code"]


def output_text(output) -> str:
    return ANSI_ESCAPE.sub("", output.get("text") or output.get("data", {}).get("text/plain", ""))


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
    cells = code_cells(site, docname)
    html_cells = soup(site, docname).select("div.cell")
    assert len(html_cells) == len(cells)
    for cell, html in zip(cells, html_cells, strict=True):
        assert cell.execution_count is not None, f"{docname}: a cell did not run:\n{cell.source}"
        for output in cell.outputs:
            if "image/png" in output.get("data", {}):
                assert html.select_one("div.cell_output img"), (docname, cell.source)
                continue
            text = output_text(output)
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


@pytest.mark.parametrize("docname", PAGES)
def test_no_deprecated_api_in_any_output(site, docname):
    for cell in code_cells(site, docname):
        for output in cell.outputs:
            text = output_text(output) + "".join(output.get("traceback", []))
            assert "DeprecationWarning" not in text and "FutureWarning" not in text, (docname, cell.source)


# Outputs that differ from run to run by nature (timings) are tagged so, and only those are skipped.
VARYING = "varying-output"


def rendered_outputs(build, docname) -> list[tuple[list[str], str]]:
    """Each cell's tags and the output a reader sees (text, and image file names), in page order."""
    outputs = []
    for cell in soup(build, docname).select("div.cell"):
        tags = [name.removeprefix("tag_") for name in cell["class"] if name.startswith("tag_")]
        output = cell.select_one("div.cell_output")
        images = [image["src"] for image in output.select("img")] if output else []
        outputs.append((tags, (output.get_text() if output else "") + " ".join(images)))
    return outputs


@pytest.mark.parametrize("docname", PAGES)
def test_two_clean_builds_give_identical_outputs(site, site_rebuilt, docname):
    """Compared as rendered: MyST-NB merges a cell's stream chunks there, wherever the kernel cut them."""
    first, second = rendered_outputs(site, docname), rendered_outputs(site_rebuilt, docname)
    assert len(first) == len(second)
    for (tags, output), (_, again) in zip(first, second, strict=True):
        if VARYING not in tags:
            assert output == again, (docname, output)


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


@pytest.mark.parametrize("script", sorted(path.stem for path in (ROOT / "code").glob("*.py")))
def test_scripts_run_on_their_own(script):
    assert run_script(script), f"code/{script}.py printed nothing"


def test_site_pages_are_the_markdown_sources():
    assert PAGES, "no page found"
    assert not list(Path(DOCS).glob("**/*.ipynb")), "pages are MyST markdown; notebooks are generated"
