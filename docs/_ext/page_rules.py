"""House rules that Sphinx does not check, so that a wrong page fails the build instead of reaching readers.

- Every line of Python on a page runs: a ``python`` code block (```` ```python ````, ``{code-block}
  python``, ...) that is not a ``>>>`` example (which ``nox -s doctest`` runs) is an error; use a
  ``{code-cell}`` or a ``literalinclude`` of a script in ``code/``.
- Every page starts with a ``(label)=`` target right before its title, so other pages can link to it
  with ``{ref}`` whatever the title becomes.
- Pages are MyST markdown: a ``.ipynb`` file in ``docs/`` is an error (notebooks are generated at build
  time, with outputs that must not be committed).

Usage: add ``"page_rules"`` to ``extensions``. :func:`check_page` is the pure check of one page's text.
"""

import re
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

FENCE = re.compile(r"^\s{0,3}(?P<marks>`{3,}|~{3,})\s*(?P<info>.*)$")
PYTHON_INFO = re.compile(
    r"^(\{(code-block|code|sourcecode)\}\s*)?(python3?|py|ipython3?|pycon)\b", re.IGNORECASE
)
LABEL = re.compile(r"^\([\w.:-]+\)=\s*$")
TITLE = re.compile(r"^# \S")


def fenced_blocks(lines: list[str]):
    """Yield (line number of the opening fence, info string, body lines) of each top-level fence."""
    opening = None
    for number, line in enumerate(lines, start=1):
        fence = FENCE.match(line)
        if opening is None:
            if fence:
                opening, body = (number, fence["marks"], fence["info"].strip()), []
            continue
        start, marks, info = opening
        closes = fence and not fence["info"].strip() and fence["marks"][0] == marks[0]
        if closes and len(fence["marks"]) >= len(marks):
            yield start, info, body
            opening = None
        else:
            body.append(line)


def check_page(text: str) -> list[tuple[int, str]]:
    """The house-rule violations of one MyST page, as (line, message), in page order."""
    lines = text.splitlines()
    problems = []
    for start, info, body in fenced_blocks(lines):
        if PYTHON_INFO.match(info) and not any(line.lstrip().startswith(">>>") for line in body):
            problems.append(
                (
                    start,
                    "a python code block that nothing runs; make it a {code-cell}, a >>> example "
                    "(run by nox -s doctest) or a literalinclude of a tested script in code/",
                )
            )
    title = next((number for number, line in enumerate(lines, start=1) if TITLE.match(line)), None)
    if title is None:
        problems.append((1, "the page has no '# Title' heading"))
    else:
        previous = next((line for line in reversed(lines[: title - 1]) if line.strip()), "")
        if not LABEL.match(previous):
            problems.append((title, "put a '(label)=' target on the line before the page's title"))
    return sorted(problems)


def check_source(app, docname, source):
    """source-read handler: report each violation at its page and line."""
    for line, message in check_page(source[0]):
        logger.error(message, location=(docname, line), type="page_rules", subtype="page")


def refuse_notebooks(app):
    """builder-inited handler: a .ipynb among the sources is an error, whatever its name."""
    srcdir = Path(app.srcdir)
    for notebook in sorted(srcdir.glob("**/*.ipynb")):
        if not any(part.startswith((".", "_")) for part in notebook.relative_to(srcdir).parts):
            logger.error(
                "%s: pages are MyST markdown (.md); notebooks are generated at build time and never "
                "committed. Convert it with `jupytext --to myst` and delete the .ipynb",
                notebook,
                type="page_rules",
                subtype="notebook",
            )


def setup(app):
    app.connect("builder-inited", refuse_notebooks)
    app.connect("source-read", check_source)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
