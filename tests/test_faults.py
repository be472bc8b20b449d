"""Bad input gets a clear error: one fault at a time in a copy of the real site, built strictly.

Each case breaks a copy of docs/ in one way and asserts that the build fails with a message that names
the file (and the line, where the tools know it). The copy starts from the execution cache of the clean
build, so only the page a fault touches is executed again.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, sphinx_build, sphinx_messages

CELL = "```{{code-cell}} ipython3\n{}\n```\n"
DESCRIPTION = re.compile(r'description: "([^"]+)"')


@pytest.fixture
def site_copy(site, tmp_path) -> Path:
    """conf.py, docs/ and code/ copied, with the clean build's execution cache as the copy's own."""
    assert site.returncode == 0, "the clean site must build before faults can be told apart"
    shutil.copy(ROOT / "conf.py", tmp_path / "conf.py")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "code", tmp_path / "code", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(site.html.parent / "cache", tmp_path / ".jupyter_cache")
    return tmp_path


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf8") + "\n" + text, encoding="utf8")


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf8").splitlines())


def build(project: Path, *options: str):
    return sphinx_build(project, project / "docs", project / "_build" / "html", *options)


# Each fault: (id, how to inject it, the message the build must print, extra build options).
# In the messages, {page} is the broken file's path and {line} the line the fault was put on.
FAULTS = [
    (
        "myst-syntax-error",
        lambda docs: append(docs / "jax-state.md", "```{admonitoin} Typo\ntext\n```\n"),
        "{page}:{line}: WARNING: Unknown directive type: 'admonitoin'",
    ),
    (
        "cell-raises",
        lambda docs: append(docs / "jax-state.md", CELL.format('raise RuntimeError("injected")')),
        "{page}:{next_line}: ERROR: a cell raised an exception",
    ),
    (
        "undefined-reference",
        lambda docs: append(docs / "jax-state.md", "See {ref}`no-such-label`.\n"),
        "{page}:{line}: WARNING: undefined label: 'no-such-label'",
    ),
    (
        "missing-image",
        lambda docs: append(docs / "jax-state.md", "![A plot](missing-plot.png)\n"),
        "{page}:{line}: WARNING: image file not readable: missing-plot.png",
    ),
    (
        "expected-error-does-not-raise",
        lambda docs: append(docs / "jax-state.md", CELL.format(":tags: [raises-exception]\n1 + 1")),
        "{page}:{line_after_tags}: ERROR: a cell tagged raises-exception ran without raising",
    ),
    (
        "unexecuted-python-block",
        lambda docs: append(docs / "jax-state.md", "```python\ncounter = Counter()\n```\n"),
        "{page}:{line}: ERROR: a python code block that nothing runs",
    ),
    (
        "duplicate-label",
        lambda docs: append(docs / "page-template.md", "(jax-state)=\n## Again\n"),
        "{template}:{heading_line}: WARNING: duplicate label jax-state, other instance in {page}",
    ),
    (
        "page-in-no-toctree",
        lambda docs: shutil.copy(docs / "page-template.md", docs / "orphan.md"),
        "{docs}/orphan.md: WARNING: document isn't included in any toctree",
    ),
    (
        "committed-notebook",
        lambda docs: (docs / "stray.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4})),
        "{docs}/stray.ipynb: pages are MyST markdown (.md)",
    ),
]


@pytest.mark.parametrize(("inject", "message"), [fault[1:] for fault in FAULTS], ids=[f[0] for f in FAULTS])
def test_a_fault_fails_the_build_naming_the_file(site_copy, inject, message):
    docs = site_copy / "docs"
    page, template = docs / "jax-state.md", docs / "page-template.md"
    line, heading_line = line_count(page) + 2, line_count(template) + 3
    inject(docs)
    result = build(site_copy)
    expected = message.format(
        page=page, line=line, next_line=line + 1, line_after_tags=line + 2,
        template=template, heading_line=heading_line, docs=docs,
    )  # fmt: skip
    assert result.returncode != 0, result.log
    assert expected in result.log, result.log


def test_a_cell_past_the_timeout_fails_the_build(site_copy):
    page = site_copy / "docs" / "jax-state.md"
    line = line_count(page) + 3
    append(page, CELL.format("import time\ntime.sleep(120)"))
    result = build(site_copy, "-D", "nb_execution_timeout=15")
    assert result.returncode != 0
    assert f"{page}:{line}: ERROR: a cell ran past the timeout" in result.log


def test_a_new_page_from_the_template_builds_cleanly(site_copy):
    docs = site_copy / "docs"
    text = (docs / "page-template.md").read_text(encoding="utf8")
    new_page = (
        text.replace("(page-template)=", "(new-topic)=")
        .replace("# Writing a page: the template", "# New")
        .replace(DESCRIPTION.search(text)[1], "A new page made from the template: a copy must build cleanly.")
    )
    (docs / "new-topic.md").write_text(new_page, encoding="utf8")
    index = (docs / "index.md").read_text(encoding="utf8")
    (docs / "index.md").write_text(index.replace("\npage-template\n", "\npage-template\nnew-topic\n"))
    result = build(site_copy)
    assert result.returncode == 0, result.log
    assert not sphinx_messages(result.log), result.log
    assert (site_copy / "_build" / "html" / "new-topic.html").exists()
