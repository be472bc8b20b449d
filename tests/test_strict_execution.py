"""The build's strictness really fires: a broken cell fails it, with a message that names the page."""

import pytest
from conftest import sphinx_build
from strict_execution import describe_failure, find_cell_line

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


def page(*cells: str, title: str = "A page") -> str:
    body = "\n\n".join(f"```{{code-cell}} ipython3\n{cell}\n```" for cell in cells)
    return f"{FRONT_MATTER}(a-page)=\n# {title}\n\n{body}\n"


def index(*docnames: str) -> str:
    toctree = "\n".join(docnames)
    return f"{FRONT_MATTER}# Home\n\n```{{toctree}}\n{toctree}\n```\n"


def nbclient_traceback(source: str, error: str) -> str:
    """The shape of the traceback MyST-NB stores for a failed cell (ANSI colours included)."""
    return (
        "Traceback (most recent call last):\n  File ...\n"
        "nbclient.exceptions.CellExecutionError: An error occurred while executing the following cell:\n"
        f"------------------\n{source}\n------------------\n\n\n\x1b[31m{error}\x1b[39m\n"
    )


PAGE_TEXT = page("x = 1", 'print("hi")\nraise ValueError("stale")')


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("x = 1", 16),
        ('print("hi")\nraise ValueError("stale")', 20),
        ('print("hi")\nraise KeyError', None),  # not verbatim in the page
        ("", None),
    ],
)
def test_find_cell_line(source, line):
    assert find_cell_line(PAGE_TEXT, source) == line


@pytest.mark.parametrize(
    ("traceback", "line", "message_start", "message_end"),
    [
        (
            nbclient_traceback('print("hi")\nraise ValueError("stale")', "ValueError: stale"),
            20,
            "a cell raised an exception; tag it raises-exception if that is intended:\n"
            "An error occurred while executing the following cell:\n------------------\nprint(",
            "ValueError: stale",
        ),
        (
            "Traceback (most recent call last):\nnbclient.exceptions.CellTimeoutError: A cell timed out while"
            " it was being executed, after 2 seconds.\nThe message was: Cell execution timed out.\n"
            "Here is a preview of the cell contents:\n-------------------\nx = 1\n-------------------\n",
            16,
            "a cell ran past the timeout (nb_execution_timeout):\nA cell timed out",
            "x = 1\n-------------------",
        ),
        (
            "Traceback (most recent call last):\nRuntimeError: Kernel died before replying to kernel_info",
            None,
            "the page could not be executed:\n",
            "RuntimeError: Kernel died before replying to kernel_info",
        ),
    ],
    ids=["raised", "timeout", "kernel-died"],
)
def test_describe_failure(traceback, line, message_start, message_end):
    found_line, message = describe_failure(PAGE_TEXT, traceback)
    assert found_line == line
    assert message.startswith(message_start)
    assert message.endswith(message_end)
    assert "\x1b" not in message, "colour codes are stripped"


def build(make_project, *cells, options=()):
    project = make_project({"index.md": index("broken"), "broken.md": page(*cells)})
    return sphinx_build(project, project / "docs", project / "_build" / "html", *options), project


def test_a_raising_cell_fails_the_build_naming_page_line_cell_and_error(make_project):
    result, project = build(make_project, "x = 1", 'print("hello")\nraise ValueError("the counter is stale")')
    assert result.returncode != 0
    assert f"{project / 'docs' / 'broken.md'}:20: ERROR: a cell raised an exception" in result.log
    assert 'raise ValueError("the counter is stale")' in result.log, "the failing cell is shown"
    assert "ValueError: the counter is stale" in result.log, "the error message is shown"


def test_a_failed_page_is_executed_again_on_the_next_build(make_project):
    first, project = build(make_project, "raise RuntimeError('still broken')")
    second = sphinx_build(project, project / "docs", project / "_build" / "html")
    assert first.returncode != 0 and second.returncode != 0
    assert "RuntimeError: still broken" in second.log


def test_a_cell_past_the_timeout_fails_the_build(make_project):
    result, project = build(
        make_project, "import time\ntime.sleep(60)", options=["-D", "nb_execution_timeout=3"]
    )
    assert result.returncode != 0
    assert f"{project / 'docs' / 'broken.md'}:16: ERROR: a cell ran past the timeout" in result.log


def test_an_expected_error_is_allowed_but_must_happen(make_project):
    raising = ":tags: [raises-exception]\n1 / 0"
    quiet = ":tags: [raises-exception]\n1 / 1"
    result, project = build(make_project, raising, quiet)
    assert result.returncode != 0
    assert (
        f"{project / 'docs' / 'broken.md'}:22: ERROR: a cell tagged raises-exception ran without raising"
        in (result.log)
    )
    assert result.log.count("ERROR") == 1, "the cell that did raise is fine"
