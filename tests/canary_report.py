"""The weekly canary's report (`nox -s newest` and `nox -s newest-toolchain`): what moved and what broke.

A canary upgrades one group of requirements.txt (the packages under one ``# -- heading``) to their
newest releases, holds the other groups at their pins, and runs the doctests and the test suite. This
script does the bookkeeping around that, in two steps run inside the session's virtualenv:

    python tests/canary_report.py plan FOLDER HEADING    # before the upgrade
    python tests/canary_report.py report FOLDER HEADING  # after the tests

``plan`` empties FOLDER and writes there ``upgrade.txt`` (the group's names, for ``pip install
--upgrade -r``), ``held.txt`` (the other groups' pins, for ``-c``) and ``before.json`` (every installed
distribution and its version). ``report`` compares what is installed now with ``before.json`` and with
``newest.json`` (pip's ``--report`` of the newest release of each name, installed alone), reads the JUnit
XML files that pytest wrote into FOLDER (``doctests.xml``, ``tests.xml``), writes ``issue.md`` (the body
of the issue that .github/workflows/newest.yml opens or adds to), prints it, and exits non-zero when a
test failed or none ran. The text work is in pure functions: :func:`requirement_groups`,
:func:`version_diff`, :func:`newest_releases`, :func:`failed_tests` and :func:`issue_body`.
"""

import argparse
import json
import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = re.compile(r"#\s*--\s*(?P<title>.*?)\s*-*\s*$")
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s#;]+)\s*(#.*)?$")
# A site build that fails prints what failed it on lines like these; the test that fails on the build
# shows the whole log, whose first line says nothing.
BUILD_PROBLEM = re.compile(r": (WARNING|ERROR|CRITICAL): |^Extension error")
# Sphinx colours its log; JUnit XML cannot hold the escape character, so pytest writes it as "#x1B".
COLOUR = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")
# A doctest's report numbers the file's lines up to the example that failed ("005 >>> x + 1"), then says
# what it expected and what it got, or which exception it raised.
DOCTEST_EXAMPLE = re.compile(r"(?P<line>\d+) +(?P<source>>>> .*)")
DOCTEST_BLOCK = re.compile(r"(?P<which>Expected|Got)(:| (?P<empty>nothing))")
# An issue's body holds 65,536 characters: the failures are grouped by what went wrong, and the list cut.
MOST_WAYS, MOST_TESTS_A_WAY = 20, 5


def normalize(name: str) -> str:
    """A distribution's name as pip compares names (PEP 503): ``Orbax_Checkpoint`` is ``orbax-checkpoint``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_groups(text: str) -> dict[str, dict[str, str]]:
    """The pins of requirements.txt by group: ``{heading: {name: version}}``, in the file's order.

    A group starts at a ``# -- Heading ---`` line; every other line is a comment, blank, or one
    ``name==version`` pin with an optional comment after it.
    """
    groups: dict[str, dict[str, str]] = {}
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if heading := HEADING.fullmatch(stripped):
            current = groups.setdefault(heading["title"], {})
        elif stripped and not stripped.startswith("#"):
            pin = PIN.fullmatch(stripped)
            if pin is None:
                raise ValueError(f"line {number}: {stripped!r} is not name==version")
            if current is None:
                raise ValueError(f"line {number}: {pin['name']} comes before the first '# -- heading'")
            current[normalize(pin["name"])] = pin["version"]
    return groups


def group_named(groups: dict[str, dict[str, str]], heading: str) -> dict[str, str]:
    if heading not in groups:
        raise ValueError(f"no group {heading!r} in requirements.txt; its groups: {', '.join(groups)}")
    return groups[heading]


def parse_versions(text: str) -> dict[str, str]:
    """A ``{name: version}`` snapshot as ``plan`` writes it, checked."""
    try:
        versions = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not a JSON snapshot of versions: {error}") from None
    if not isinstance(versions, dict) or not all(
        isinstance(name, str) and isinstance(version, str) and version for name, version in versions.items()
    ):
        raise ValueError("not a JSON snapshot of versions: expected an object of name: version strings")
    return {normalize(name): version for name, version in versions.items()}


def newest_releases(pip_report: str) -> dict[str, str]:
    """``{name: version}`` from pip's ``--report`` of a dry-run install: the newest release of each name."""
    try:
        report = json.loads(pip_report)
        return {
            normalize(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]
        }
    except json.JSONDecodeError as error:
        raise ValueError(f"not a pip report: {error}") from None
    except (KeyError, TypeError):
        raise ValueError("not a pip report: expected install: [{metadata: {name, version}}]") from None


def installed_versions() -> dict[str, str]:
    return {normalize(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


@dataclass(frozen=True)
class Moved:
    name: str
    old: str | None  # None: not installed before
    new: str | None  # None: not installed now


def version_diff(before: dict[str, str], after: dict[str, str]) -> list[Moved]:
    """Every package whose version differs between two snapshots, by name."""
    names = sorted(set(before) | set(after))
    return [
        Moved(name, before.get(name), after.get(name))
        for name in names
        if before.get(name) != after.get(name)
    ]


@dataclass(frozen=True)
class Failure:
    test: str  # as pytest names it on its command line
    summary: str  # one line that says what went wrong


@dataclass(frozen=True)
class Outcome:
    ran: int  # tests that ran (skipped ones excluded)
    failed: list[Failure]


def node_id(classname: str, name: str) -> str:
    """pytest's id of a JUnit case: ``tests.test_site``, ``test_z``: ``tests/test_site.py::test_z``."""
    if not classname:  # a file that could not be collected: its dotted path is the name
        if name.endswith(".md"):  # a page whose doctests could not be collected
            return name.removesuffix(".md").replace(".", "/") + ".md"
        return name.replace(".", "/") + ".py"
    if classname.endswith(".md"):  # a page's doctests
        return classname.removesuffix(".md").replace(".", "/") + ".md::" + name
    parts = classname.split(".")
    classes = []
    while parts and parts[-1][:1].isupper():
        classes.insert(0, parts.pop())
    return "::".join(["/".join(parts) + ".py", *classes, name])


def summary(message: str, details: str) -> str:
    """The line of a failure that says what went wrong: a build's first warning, a doctest's example and
    what it gave, else the exception."""
    details = COLOUR.sub("", details)
    lines = [COLOUR.sub("", line).strip() for line in message.splitlines()]
    if doctest := doctest_summary(lines):
        return shorten(doctest)
    # pytest marks the lines of the error with "E" in the first column.
    error = [line[1:].strip() for line in details.splitlines() if line.startswith("E ")]
    for line in [*lines, *error]:
        if BUILD_PROBLEM.search(line):
            return shorten(line)
    return shorten(next((line for line in [*error, *lines] if line), "(no message)"))


def doctest_summary(lines: list[str]) -> str | None:
    """``line 5: >>> x + 1: expected 3, got 2`` from a doctest's report, or None for other reports."""
    examples = [number for number, line in enumerate(lines) if DOCTEST_EXAMPLE.fullmatch(line)]
    if not examples:
        return None
    example = DOCTEST_EXAMPLE.fullmatch(lines[examples[-1]])
    where = f"line {int(example['line'])}: {example['source']}"
    after = lines[examples[-1] + 1 :]
    if after and after[0].startswith("UNEXPECTED EXCEPTION: "):
        return f"{where}: raised {after[0].removeprefix('UNEXPECTED EXCEPTION: ')}"
    # "Expected:" and "Got:" each head a block of lines that ends at a blank one; "Got nothing" has none.
    said: dict[str, list[str]] = {}
    block = None
    for line in after:
        if heading := DOCTEST_BLOCK.fullmatch(line):
            said[heading["which"]] = ["nothing"] if heading["empty"] else []
            block = None if heading["empty"] else said[heading["which"]]
        elif not line:
            block = None
        elif block is not None:
            block.append(line)
    if not said:
        return where
    return (
        f"{where}: expected {' '.join(said.get('Expected', ['?']))}, got {' '.join(said.get('Got', ['?']))}"
    )


def shorten(line: str, most: int = 200) -> str:
    return line if len(line) <= most else line[: most - 1] + "…"


def failed_tests(junit_xml: str) -> Outcome:
    """The tests that ran and those that failed or errored, from pytest's ``--junitxml`` file."""
    try:
        root = ElementTree.fromstring(junit_xml)
    except ElementTree.ParseError as error:
        raise ValueError(f"not JUnit XML: {error}") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if root.tag not in ("testsuite", "testsuites") or not suites:
        raise ValueError(f"not JUnit XML: the root is <{root.tag}>, with no <testsuite>")
    ran, failed = set(), {}
    for case in (case for suite in suites for case in suite.iter("testcase")):
        test = node_id(case.get("classname", ""), case.get("name", ""))
        # A test that fails and then errors in its teardown has two <testcase> elements: it ran once.
        if case.find("skipped") is None:
            ran.add(test)
        for problem in (*case.findall("failure"), *case.findall("error")):
            # A test that fails and then errors in its teardown is listed once, for its first problem.
            failed.setdefault(test, Failure(test, summary(problem.get("message", ""), problem.text or "")))
    return Outcome(len(ran), list(failed.values()))


def issue_body(
    heading: str,
    upgraded: list[str],
    moved: list[Moved],
    held_back: list[Moved],
    outcomes: dict[str, Outcome | None],
) -> str:
    """The issue's text: what the canary upgraded, which versions moved, which tests failed.

    ``held_back`` lists the upgraded names whose newest release (``new``) is not the one installed
    (``old``); ``outcomes`` maps each pytest run's name to its outcome, or None where it wrote no results.
    """
    ran = sum(outcome.ran for outcome in outcomes.values() if outcome)
    failures = [failure for outcome in outcomes.values() if outcome for failure in outcome.failed]
    missing = [name for name, outcome in outcomes.items() if outcome is None]
    empty = [name for name, outcome in outcomes.items() if outcome and not outcome.ran]
    verdict = f"**{len(failures)} of {ran} failed**" if failures else f"all {ran} passed"
    if missing:
        verdict += f"; {' and '.join(missing)} wrote no results (see the run's log)"
    if empty:
        verdict += f"; **{' and '.join(empty)} ran no test** (see the run's log)"
    lines = [
        f"The canary upgraded the group *{heading}* of requirements.txt ({', '.join(upgraded)}) to the "
        f"newest releases that install together, held every other pin, and ran {' and '.join(outcomes)}: "
        f"{verdict}.",
        "",
        "### What moved",
        "",
    ]
    if moved:
        lines += ["| package | pinned or before | now |", "| --- | --- | --- |"]
        # The packages the canary upgraded first, then what moved with them.
        for change in sorted(moved, key=lambda change: (change.name not in upgraded, change.name)):
            name = f"**{change.name}**" if change.name in upgraded else change.name
            lines.append(f"| {name} | {change.old or '(none)'} | {change.new or '(removed)'} |")
    else:
        cause = ", so no new release caused the failures below" if failures else ""
        lines.append(f"Nothing: the pins are the newest releases that install together{cause}.")
    if held_back:
        lines += [
            "",
            "### Not at their newest release",
            "",
            "A package installed with them requires an older release of these, so the canary could not test "
            "the newest:",
            "",
            "| package | installed | newest |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {change.name} | {change.old or '(none)'} | {change.new} |" for change in held_back]
    if failures:
        lines += ["", "### What failed", ""]
        ways: dict[str, list[str]] = {}
        for failure in failures:
            ways.setdefault(failure.summary, []).append(failure.test)
        for line, tests in list(ways.items())[:MOST_WAYS]:
            shown = ", ".join(f"`{test}`" for test in tests[:MOST_TESTS_A_WAY])
            more = f" and {len(tests) - MOST_TESTS_A_WAY} more" if len(tests) > MOST_TESTS_A_WAY else ""
            quoted = line.replace("`", "'")  # a backtick would end the code span
            lines += [f"- {shown}{more}:", f"  `{quoted}`"]
        if len(ways) > MOST_WAYS:
            rest = sum(len(tests) for tests in list(ways.values())[MOST_WAYS:])
            lines.append(f"- {rest} more, failing in {len(ways) - MOST_WAYS} other ways: see the run's log")
    return "\n".join(lines) + "\n"


def plan(folder: Path, heading: str) -> None:
    groups = requirement_groups((ROOT / "requirements.txt").read_text(encoding="utf8"))
    upgrade = group_named(groups, heading)
    held = [
        f"{name}=={version}"
        for title, pins in groups.items()
        if title != heading
        for name, version in pins.items()
    ]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "upgrade.txt").write_text("\n".join(upgrade) + "\n", encoding="utf8")
    (folder / "held.txt").write_text("\n".join(held) + "\n", encoding="utf8")
    (folder / "before.json").write_text(
        json.dumps(installed_versions(), indent=1, sort_keys=True), encoding="utf8"
    )


def report(folder: Path, heading: str) -> int:
    groups = requirement_groups((ROOT / "requirements.txt").read_text(encoding="utf8"))
    upgraded = list(group_named(groups, heading))
    installed = installed_versions()
    moved = version_diff(parse_versions((folder / "before.json").read_text(encoding="utf8")), installed)
    newest = newest_releases((folder / "newest.json").read_text(encoding="utf8"))
    held_back = version_diff({name: installed[name] for name in newest if name in installed}, newest)
    outcomes = {}
    for run in ("doctests", "tests"):
        junit = folder / f"{run}.xml"
        outcomes[run] = failed_tests(junit.read_text(encoding="utf8")) if junit.is_file() else None
    body = issue_body(heading, upgraded, moved, held_back, outcomes)
    (folder / "issue.md").write_text(body, encoding="utf8")
    print(body)
    broken = any(outcome is None or outcome.failed or not outcome.ran for outcome in outcomes.values())
    return 1 if broken else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["plan", "report"])
    parser.add_argument(
        "folder", type=Path, help="where the canary keeps its files, e.g. _build/canary/newest"
    )
    parser.add_argument("heading", help="the group of requirements.txt to upgrade, by its heading")
    args = parser.parse_args()
    if args.step == "plan":
        plan(args.folder, args.heading)
        return 0
    return report(args.folder, args.heading)


if __name__ == "__main__":
    sys.exit(main())
