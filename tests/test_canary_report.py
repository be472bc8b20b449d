"""The weekly canary's report (tests/canary_report.py): requirement groups, versions, failures, issue text."""

import json
from pathlib import Path

import pytest
from canary_report import (
    Failure,
    Moved,
    Outcome,
    failed_tests,
    group_named,
    issue_body,
    newest_releases,
    node_id,
    parse_versions,
    requirement_groups,
    summary,
    version_diff,
)

ROOT = Path(__file__).resolve().parents[1]

REQUIREMENTS = """\
# Every package, pinned.

# -- The stack the pages teach ----------
jax==0.10.2
Orbax_Checkpoint==0.12.8  # Flax's checkpointing library

# -- Building the site ---
sphinx==9.0.4
"""


def test_requirement_groups_by_heading_in_order():
    assert requirement_groups(REQUIREMENTS) == {
        "The stack the pages teach": {"jax": "0.10.2", "orbax-checkpoint": "0.12.8"},
        "Building the site": {"sphinx": "9.0.4"},
    }


def test_the_real_requirements_have_the_groups_the_canaries_upgrade():
    groups = requirement_groups((ROOT / "requirements.txt").read_text(encoding="utf8"))
    assert {"jax", "flax", "optax", "orbax-checkpoint", "torch"} <= set(groups["The stack the pages teach"])
    toolchain = {"sphinx", "myst-nb", "sphinx-book-theme", "pydata-sphinx-theme", "sphinx-design", "tinycss2"}
    assert toolchain <= set(groups["Building the site"])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("jax==0.10.2\n# -- Stack --\n", "line 1: jax comes before the first '# -- heading'"),
        ("# -- Stack --\njax>=0.10\n", "line 2: 'jax>=0.10' is not name==version"),
        ("# -- Stack --\njax\n", "line 2: 'jax' is not name==version"),
        ("# -- Stack --\n-r other.txt\n", "line 2: '-r other.txt' is not name==version"),
        ("# -- Stack --\njax==\n", "line 2: 'jax==' is not name==version"),
    ],
)
def test_requirement_groups_refuse(text, error):
    with pytest.raises(ValueError) as raised:
        requirement_groups(text)
    assert str(raised.value) == error


def test_group_named_says_which_groups_there_are():
    with pytest.raises(ValueError) as raised:
        group_named(requirement_groups(REQUIREMENTS), "Checks")
    assert str(raised.value) == (
        "no group 'Checks' in requirements.txt; its groups: The stack the pages teach, Building the site"
    )


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        ({"jax": "0.10.2"}, {"jax": "0.10.2"}, []),
        ({"jax": "0.10.2"}, {"jax": "0.11.0"}, [Moved("jax", "0.10.2", "0.11.0")]),
        ({"torch": "2.14.1"}, {"torch": "2.13.0+cpu"}, [Moved("torch", "2.14.1", "2.13.0+cpu")]),
        ({}, {"nvidia-nccl": "2.1"}, [Moved("nvidia-nccl", None, "2.1")]),
        ({"six": "1.16.0"}, {}, [Moved("six", "1.16.0", None)]),
        (
            {"optax": "0.2.8", "flax": "0.12.8", "jax": "0.10.2"},
            {"optax": "0.2.9", "flax": "0.13.0", "jax": "0.10.2"},
            [Moved("flax", "0.12.8", "0.13.0"), Moved("optax", "0.2.8", "0.2.9")],
        ),
    ],
)
def test_version_diff(before, after, moved):
    assert version_diff(before, after) == moved


def test_parse_versions_normalizes_names():
    assert parse_versions('{"Orbax_Checkpoint": "0.12.8", "jax": "0.10.2"}') == {
        "orbax-checkpoint": "0.12.8",
        "jax": "0.10.2",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "not a JSON snapshot of versions: Expecting value: line 1 column 1 (char 0)"),
        ("jax==0.10.2", "not a JSON snapshot of versions: Expecting value: line 1 column 1 (char 0)"),
        ('["jax", "0.10.2"]', "not a JSON snapshot of versions: expected an object of name: version strings"),
        ('{"jax": 0.1}', "not a JSON snapshot of versions: expected an object of name: version strings"),
        ('{"jax": ""}', "not a JSON snapshot of versions: expected an object of name: version strings"),
        ('{"jax": null}', "not a JSON snapshot of versions: expected an object of name: version strings"),
    ],
)
def test_parse_versions_refuses(text, error):
    with pytest.raises(ValueError) as raised:
        parse_versions(text)
    assert str(raised.value) == error


def test_newest_releases_from_a_pip_report():
    report = {
        "version": "1",
        "install": [
            {"metadata": {"name": "pydata-sphinx-theme", "version": "0.24.0"}},
            {"metadata": {"name": "sphinx_design", "version": "0.8.0"}},
        ],
    }
    assert newest_releases(json.dumps(report)) == {"pydata-sphinx-theme": "0.24.0", "sphinx-design": "0.8.0"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "not a pip report: Expecting value: line 1 column 1 (char 0)"),
        ("{}", "not a pip report: expected install: [{metadata: {name, version}}]"),
        (
            '{"install": [{"metadata": {"name": "jax"}}]}',
            "not a pip report: expected install: [{metadata: {name, version}}]",
        ),
        ('{"install": ["jax"]}', "not a pip report: expected install: [{metadata: {name, version}}]"),
        ('{"install": null}', "not a pip report: expected install: [{metadata: {name, version}}]"),
    ],
)
def test_newest_releases_refuses(text, error):
    with pytest.raises(ValueError) as raised:
        newest_releases(text)
    assert str(raised.value) == error


@pytest.mark.parametrize(
    ("classname", "name", "test"),
    [
        ("tests.test_site", "test_builds", "tests/test_site.py::test_builds"),
        ("tests.test_browser", "test_axe[index-dark]", "tests/test_browser.py::test_axe[index-dark]"),
        ("tests.test_x.TestThing", "test_y", "tests/test_x.py::TestThing::test_y"),
        ("", "tests.test_broken", "tests/test_broken.py"),
        ("", "docs.jax-state.md", "docs/jax-state.md"),
        ("docs.jax-state.md", "jax-state.md", "docs/jax-state.md::jax-state.md"),
        ("code.jax_state", "jax_state.main", "code/jax_state.py::jax_state.main"),
    ],
)
def test_node_id(classname, name, test):
    assert node_id(classname, name) == test


BUILD_LOG = """AssertionError: Running Sphinx v9.0.4
loading translations [en]... done
/site/docs/flax-nnx.md:42: WARNING: cell 3 raised AttributeError: 'Linear' has no 'kernel'
/site/docs/pitfalls.md:7: WARNING: second problem
build finished with problems, 2 warnings."""


DOCTEST_REPORT = (
    "001 # Page\n002 \n003 ```python\n004 >>> x = 1\n005 >>> x + 1\n{}\n/site/docs/page.md:5: DocTestFailure"
)


@pytest.mark.parametrize(
    ("message", "details", "line"),
    [
        (
            "AssertionError: x is not\n  one\nassert 2 == 1",
            ">       assert x == 1\nE   AssertionError: x is not\nE     one\nE   assert 2 == 1",
            "AssertionError: x is not",
        ),
        (
            'failed on setup with "RuntimeError: setup broke"',
            "E   RuntimeError: setup broke\n\ntests/test_a.py:8: RuntimeError",
            "RuntimeError: setup broke",
        ),
        (
            "collection failure",
            "ImportError while importing test module\nE   ModuleNotFoundError: No module named 'nope'",
            "ModuleNotFoundError: No module named 'nope'",
        ),
        (
            BUILD_LOG,
            "E   AssertionError: Running Sphinx v9.0.4",
            "/site/docs/flax-nnx.md:42: WARNING: cell 3 raised AttributeError: 'Linear' has no 'kernel'",
        ),
        (
            "AssertionError: #x1B[01mRunning Sphinx v9.0.4#x1B[39;49;00m",
            "E       AssertionError: Running Sphinx\n"
            "E         #x1B[91m/site/docs/cost.md: WARNING: Executing notebook failed: Timeout#x1B[39;49;00m",
            "/site/docs/cost.md: WARNING: Executing notebook failed: Timeout",
        ),
        # doctest reports as pytest writes them: the file's lines up to the failing example, then the outcome
        (
            DOCTEST_REPORT.format("Expected:\n    3\nGot:\n    2\n"),
            "",
            "line 5: >>> x + 1: expected 3, got 2",
        ),
        (
            DOCTEST_REPORT.format("Expected:\n    3\n    4\nGot nothing\n"),
            "",
            "line 5: >>> x + 1: expected 3 4, got nothing",
        ),
        (
            DOCTEST_REPORT.format("Expected nothing\nGot:\n    2\n"),
            "",
            "line 5: >>> x + 1: expected nothing, got 2",
        ),
        (
            DOCTEST_REPORT.format(
                "UNEXPECTED EXCEPTION: ValueError(\"invalid literal for int() with base 10: 'x'\")\n"
                "Traceback (most recent call last):\n"
                '  File "<doctest raise.md[1]>", line 1, in <module>\n'
                "ValueError: invalid literal for int() with base 10: 'x'"
            ),
            "",
            "line 5: >>> x + 1: raised ValueError(\"invalid literal for int() with base 10: 'x'\")",
        ),
        ("", "", "(no message)"),
        ("ValueError: " + "boom " * 100, "", "ValueError: " + ("boom " * 100)[:187] + "…"),
    ],
)
def test_summary(message, details, line):
    assert summary(message, details) == line


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="2" skipped="1" tests="6">
<testcase classname="tests.test_a" name="test_ok" time="0.0"/>
<testcase classname="tests.test_a" name="test_skip"><skipped message="no GPU"/></testcase>
<testcase classname="tests.test_a" name="test_fail[2]">
  <failure message="AssertionError: x is not&#10;one">E   AssertionError: x is not</failure>
</testcase>
<testcase classname="tests.test_a" name="test_fail[2]">
  <error message="failed on teardown with &quot;OSError: gone&quot;">E   OSError: gone</error>
</testcase>
<testcase classname="tests.test_a.TestK" name="test_m">
  <failure message="ValueError: boom">E   ValueError: boom</failure>
</testcase>
<testcase classname="tests.test_a" name="test_setup">
  <error message="x">E   RuntimeError: setup broke</error>
</testcase>
</testsuite></testsuites>"""


def test_failed_tests_lists_each_failing_test_once_with_its_first_problem():
    assert failed_tests(JUNIT) == Outcome(
        ran=4,
        failed=[
            Failure("tests/test_a.py::test_fail[2]", "AssertionError: x is not"),
            Failure("tests/test_a.py::TestK::test_m", "ValueError: boom"),
            Failure("tests/test_a.py::test_setup", "RuntimeError: setup broke"),
        ],
    )


def test_failed_tests_reads_a_bare_testsuite():
    assert failed_tests(
        '<testsuite tests="1"><testcase classname="tests.t" name="test_ok"/></testsuite>'
    ) == Outcome(1, [])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "not JUnit XML: no element found: line 1, column 0"),
        ("<testsuites><testsuite>", "not JUnit XML: no element found: line 1, column 23"),
        ("<html><body/></html>", "not JUnit XML: the root is <html>, with no <testsuite>"),
        ("<testsuites/>", "not JUnit XML: the root is <testsuites>, with no <testsuite>"),
    ],
)
def test_failed_tests_refuses(text, error):
    with pytest.raises(ValueError) as raised:
        failed_tests(text)
    assert str(raised.value) == error


STACK = "The stack the pages teach"


def test_issue_body_says_what_moved_and_what_failed():
    moved = [
        Moved("ml-dtypes", "0.5.1", "0.6.0"),
        Moved("flax", "0.12.8", "0.13.0"),
        Moved("nvidia-nccl", None, "2.1"),
    ]
    outcomes = {
        "doctests": Outcome(13, []),
        "tests": Outcome(
            500,
            [
                Failure("tests/test_site.py::test_builds", "docs/flax-nnx.md:42: WARNING: cell 3 raised"),
                Failure("tests/test_flax_nnx.py::test_page", "docs/flax-nnx.md:42: WARNING: cell 3 raised"),
                Failure("tests/test_browser.py::test_tabs", "AssertionError: `tabs` not synced"),
            ],
        ),
    }
    held_back = [Moved("optax", "0.2.8", "0.3.0")]
    assert issue_body(STACK, ["jax", "flax", "optax"], moved, held_back, outcomes) == (
        "The canary upgraded the group *The stack the pages teach* of requirements.txt (jax, flax, optax) to "
        "the newest releases that install together, held every other pin, and ran doctests and tests: "
        "**3 of 513 failed**.\n"
        "\n"
        "### What moved\n"
        "\n"
        "| package | pinned or before | now |\n"
        "| --- | --- | --- |\n"
        "| **flax** | 0.12.8 | 0.13.0 |\n"
        "| ml-dtypes | 0.5.1 | 0.6.0 |\n"
        "| nvidia-nccl | (none) | 2.1 |\n"
        "\n"
        "### Not at their newest release\n"
        "\n"
        "A package installed with them requires an older release of these, so the canary could not test "
        "the newest:\n"
        "\n"
        "| package | installed | newest |\n"
        "| --- | --- | --- |\n"
        "| optax | 0.2.8 | 0.3.0 |\n"
        "\n"
        "### What failed\n"
        "\n"
        "- `tests/test_site.py::test_builds`, `tests/test_flax_nnx.py::test_page`:\n"
        "  `docs/flax-nnx.md:42: WARNING: cell 3 raised`\n"
        "- `tests/test_browser.py::test_tabs`:\n"
        "  `AssertionError: 'tabs' not synced`\n"
    )


def test_issue_body_when_nothing_moved_and_a_run_wrote_no_results():
    body = issue_body(STACK, ["jax"], [], [], {"doctests": Outcome(13, []), "tests": None})
    assert body.splitlines()[0].endswith(
        "ran doctests and tests: all 13 passed; tests wrote no results (see the run's log)."
    )
    assert "Nothing: the pins are the newest releases that install together.\n" in body
    assert "### Not at their newest release" not in body
    assert "### What failed" not in body


def test_issue_body_says_a_run_that_ran_no_test():
    body = issue_body(STACK, ["jax"], [], [], {"doctests": Outcome(0, []), "tests": Outcome(13, [])})
    assert body.splitlines()[0].endswith(
        "ran doctests and tests: all 13 passed; **doctests ran no test** (see the run's log)."
    )


def test_issue_body_says_a_failure_with_nothing_moved_is_no_release_s():
    body = issue_body(STACK, ["jax"], [], [], {"tests": Outcome(5, [Failure("tests/t.py::test_a", "E")])})
    expected = "Nothing: the pins are the newest releases that install together, so no new release caused"
    assert expected + " the failures below." in body


def test_issue_body_groups_the_failures_by_what_went_wrong_and_cuts_the_list():
    failures = [Failure(f"tests/test_a.py::test_{n}", f"Error {n % 30}") for n in range(100)]
    body = issue_body(STACK, ["jax"], [], [], {"tests": Outcome(100, failures)})
    ways = body.split("### What failed\n\n")[1].splitlines()
    assert ways[:2] == [
        "- `tests/test_a.py::test_0`, `tests/test_a.py::test_30`, `tests/test_a.py::test_60`, "
        "`tests/test_a.py::test_90`:",
        "  `Error 0`",
    ]
    assert len(ways) == 2 * 20 + 1
    assert ways[-1] == "- 30 more, failing in 10 other ways: see the run's log"


def test_issue_body_names_five_tests_a_way_and_counts_the_others():
    failures = [Failure(f"tests/test_b.py::test_{n}", "Timeout") for n in range(12)]
    body = issue_body(STACK, ["jax"], [], [], {"tests": Outcome(12, failures)})
    assert body.endswith("`tests/test_b.py::test_4` and 7 more:\n  `Timeout`\n")
