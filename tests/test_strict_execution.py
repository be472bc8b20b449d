"""The build's strictness really fires: a broken cell fails it, with a message that names the page."""

import pytest
from conftest import FRONT_MATTER, SPHINX_LEVELS, sphinx_build, sphinx_messages
from strict_execution import (
    check_expected_error,
    describe_failure,
    find_cell_line,
    raised_exception,
    tag_problem,
)


def page(*cells: str, title: str = "A page") -> str:
    body = "\n\n".join(f"```{{code-cell}} ipython3\n{cell}\n```" for cell in cells)
    return f"{FRONT_MATTER}(a-page)=\n# {title}\n\n{body}\n"


def index(*docnames: str) -> str:
    toctree = "\n".join(docnames)
    return f"{FRONT_MATTER}(home)=\n# Home\n\n```{{toctree}}\n{toctree}\n```\n"


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


@pytest.mark.parametrize(
    ("log", "levels", "found"),
    [
        ("/p/docs/broken.md:22: ERROR: a cell tagged raises-exception ran without raising\n", "ERROR", 1),
        ("\x1b[91mERROR: no such page\x1b[39;49;00m\n", "ERROR", 1),  # coloured, no location
        ("\x1b[91mWARNING: no such page\x1b[39;49;00m\n", "ERROR", 0),  # not an error
        ("\x1b[91mWARNING: no such page\x1b[39;49;00m\n", SPHINX_LEVELS, 1),
        ("CRITICAL: the theme is missing\n", SPHINX_LEVELS, 1),
        ("[IPKernelApp] ERROR | Error in message handler\n", "ERROR", 0),  # the kernel's own log
        ("[IPKernelApp] WARNING | Kernel is running over TCP without encryption.\n", SPHINX_LEVELS, 0),
        ("build succeeded.\n", SPHINX_LEVELS, 0),
    ],
)
def test_sphinx_messages_are_the_builds_own(log, levels, found):
    assert len(sphinx_messages(log, levels)) == found


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
    errors = sphinx_messages(result.log, "ERROR")
    assert len(errors) == 1, f"the cell that did raise is fine: {errors}"


def test_a_parse_only_build_does_not_judge_expected_errors(make_project):
    """nox -s lint reads the pages without running them: no cell output, so nothing to judge."""
    result, _ = build(
        make_project, ":tags: [raises-exception]\n1 / 0", options=["-D", "nb_execution_mode=off"]
    )
    assert result.returncode == 0, result.log


def ipython_traceback(*chain: tuple[str, str]) -> str:
    """An error output as MyST-NB puts it in the doctree: IPython's traceback, one block per link."""
    blocks = [
        f"{'-' * 75}\n{name:<42}Traceback (most recent call last)\nCell In[3], line 1\n----> 1 f()\n\n"
        f"{name}: {message}"
        for name, message in chain
    ]
    return "\n\nThe above exception was the direct cause of the following exception:\n\n".join(blocks)


@pytest.mark.parametrize(
    ("traceback", "name"),
    [
        (ipython_traceback(("ZeroDivisionError", "division by zero")), "ZeroDivisionError"),
        (
            ipython_traceback(("ModifyScopeVariableError", 'Cannot update variable "mean"')),
            "ModifyScopeVariableError",
        ),
        (ipython_traceback(("KeyError", "'k'"), ("ValueError", "bad")), "ValueError"),  # the last link
        (ipython_traceback(("ValueError", "line one\nKeyError: not the name")), "ValueError"),
        (
            f"{'-' * 75}\nAVeryLongExceptionNameWiderThanTheHeaderAllows_Traceback (most recent call last)\n"
            "Cell In[4], line 1\n\nAVeryLongExceptionNameWiderThanTheHeaderAllows_: x",
            "AVeryLongExceptionNameWiderThanTheHeaderAllows_",
        ),
        ("  Cell In[3], line 1\n    x = (\n         ^\nSyntaxError: incomplete input\n", "SyntaxError"),
        ("\x1b[0;31mKeyError\x1b[0m: ", "KeyError"),
        ("StopIteration", "StopIteration"),
        ("the kernel said something else entirely\n", None),
    ],
    ids=[
        "simple",
        "flax",
        "chained",
        "message-lines",
        "long-name",
        "no-header",
        "ansi",
        "bare",
        "unreadable",
    ],
)
def test_raised_exception_is_read_from_the_error_output(traceback, name):
    assert raised_exception(traceback) == name


EXPECTED = "raises-exception"


@pytest.mark.parametrize(
    ("tags", "raised", "message"),
    [
        # no expectation: nothing to judge (a raising untagged cell fails the whole page elsewhere)
        ([], None, None),
        (["tab-nnx"], None, None),
        # raises-exception alone: any exception, but one
        ([EXPECTED], "ValueError", None),
        ([EXPECTED], "", None),
        (
            [EXPECTED],
            None,
            "a cell tagged raises-exception ran without raising; fix the cell or remove the tag",
        ),
        # a named exception: that one only
        ([EXPECTED, "raises:ValueError"], "ValueError", None),
        (["raises:ValueError", "tab-linen", EXPECTED], "ValueError", None),
        ([EXPECTED, "raises:KeyError", "raises:IndexError"], "IndexError", None),
        (
            [EXPECTED, "raises:ModifyScopeVariableError"],
            "ValueError",
            "a cell tagged raises:ModifyScopeVariableError raised ValueError, not ModifyScopeVariableError; "
            "fix the cell, or if ValueError is now right, change the tag to raises:ValueError and the text "
            "that describes the error",
        ),
        (
            [EXPECTED, "raises:KeyError", "raises:IndexError"],
            "TypeError",
            "a cell tagged raises:KeyError raised TypeError, not KeyError or IndexError; fix the cell, or "
            "if TypeError is now right, change the tag to raises:TypeError and the text that describes the "
            "error",
        ),
        (
            [EXPECTED, "raises:Exception"],  # the exact class: a base class does not match
            "ValueError",
            "a cell tagged raises:Exception raised ValueError, not Exception; fix the cell, or if ValueError "
            "is now right, change the tag to raises:ValueError and the text that describes the error",
        ),
        (
            [EXPECTED, "raises:ValueError"],
            None,
            "a cell tagged raises:ValueError ran without raising ValueError; fix the cell, or remove its "
            "raises-exception and raises: tags and the text that describes the error",
        ),
        (
            [EXPECTED, "raises:ValueError"],
            "",
            "a cell tagged raises:ValueError raised an exception whose type its output does not show",
        ),
        # the tags themselves
        (
            ["raises:ValueError"],
            "ValueError",
            "a cell tagged raises:ValueError must also be tagged raises-exception: that tag is what lets "
            "the cell raise, in this build and in Jupyter",
        ),
        (
            ["raises:ValueError"],
            None,
            "a cell tagged raises:ValueError must also be tagged raises-exception: that tag is what lets "
            "the cell raise, in this build and in Jupyter",
        ),
        (
            [EXPECTED, "raises:flax.errors.ModifyScopeVariableError"],
            "ModifyScopeVariableError",
            "the tag raises:flax.errors.ModifyScopeVariableError must name an exception class as the error "
            "output shows it, without its module: e.g. raises:ModifyScopeVariableError",
        ),
        (
            [EXPECTED, "raises:"],
            "ValueError",
            "the tag raises: must name an exception class as the error output shows it, without its "
            "module: e.g. raises:ValueError",
        ),
    ],
)
def test_check_expected_error(tags, raised, message):
    assert check_expected_error(tags, raised) == message


def test_tag_problem_judges_the_tags_alone():
    assert tag_problem([EXPECTED, "raises:ValueError"]) is None
    assert tag_problem(["raises:ValueError"]).startswith(
        "a cell tagged raises:ValueError must also be tagged"
    )
    assert tag_problem([]) is None


def test_an_expected_error_of_another_type_fails_the_build_at_its_cell(make_project):
    right = ":tags: [raises-exception, raises:ZeroDivisionError]\n1 / 0"
    wrong = ":tags: [raises-exception, raises:KeyError]\n1 / 0"
    quiet = ":tags: [raises-exception, raises:ValueError]\nx = 1"
    untagged = ":tags: [raises:ValueError]\nx = 2"
    result, project = build(make_project, right, wrong, quiet, untagged)
    broken = project / "docs" / "broken.md"
    assert result.returncode != 0
    assert (
        f"{broken}:22: ERROR: a cell tagged raises:KeyError raised ZeroDivisionError, not KeyError"
        in result.log
    )
    assert f"{broken}:27: ERROR: a cell tagged raises:ValueError ran without raising ValueError" in result.log
    assert (
        f"{broken}:32: ERROR: a cell tagged raises:ValueError must also be tagged raises-exception"
        in result.log
    )
    errors = sphinx_messages(result.log, "ERROR")
    assert len(errors) == 3, f"the cell that raised what it names is fine: {errors}"


def test_a_parse_only_build_still_checks_the_tags(make_project):
    result, project = build(
        make_project,
        ":tags: [raises-exception, raises:ValueError]\nx = 1",
        ":tags: [raises:ValueError]\nx = 2",
        options=["-D", "nb_execution_mode=off"],
    )
    assert result.returncode != 0
    assert (
        f"{project / 'docs' / 'broken.md'}:22: ERROR: a cell tagged raises:ValueError must also" in result.log
    )
    errors = sphinx_messages(result.log, "ERROR")
    assert len(errors) == 1, f"without outputs, a cell that did not raise is not judged: {errors}"
