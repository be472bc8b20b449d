"""Make a failed page fail the build with a message a contributor can act on.

MyST-NB, told to raise on a failing cell, stops with ``ExecutionError: <page path>`` and nothing
else; told to warn, it prints the whole nbclient traceback. This extension keeps MyST-NB on warnings
and adds, for each failed page, one error that names the page and the line of the failing cell, shows
the cell and ends with the exception (or the timeout). It also:

- re-reads a failed page on the next build (the cache never stores a failed run, but Sphinx would
  otherwise consider the unchanged page up to date and keep the broken output);
- fails a page whose cell is tagged ``raises-exception`` but did not raise, so an expected error
  that went away is noticed;
- fails a page whose cell names the exception it must raise, with a tag ``raises:<Name>``, and raised
  another one (see below);
- creates the execution cache before the pages are read, so that the workers of a parallel build
  (``-j``) do not race to create its database ("table settings already exists").

Naming the expected exception: a cell that shows an error on purpose carries two tags::

    ```{code-cell} ipython3
    :tags: [raises-exception, raises:ModifyScopeVariableError]
    model.apply(variables, x, train=True)
    ```

``raises-exception`` lets the cell raise; ``raises:<Name>`` says which exception the page is about: the
class name as the error output shows it (``ModifyScopeVariableError``, not
``flax.errors.ModifyScopeVariableError``; the exact class, not a base class). Several ``raises:`` tags
accept any of their names. The build fails, at the cell, when such a cell raises nothing, raises another
exception, carries a ``raises:`` tag that is not a class name, or carries ``raises:<Name>`` without
``raises-exception``.

Why both tags, rather than ``raises:<Name>`` implying ``raises-exception``: nbclient, which runs the
cells, lets a cell raise only when that cell is tagged ``raises-exception`` in the notebook MyST-NB makes
from the page, and MyST-NB offers no step between reading the page and running it. Implying the tag would
mean rewriting the page's text before MyST-NB reads it (Sphinx's ``source-read``): a hidden edit, after
which the page opened in Jupyter through jupytext, or the ``.md`` a reader downloads, would stop at the
error while the site runs through. Requiring both keeps the page a notebook that behaves the same
everywhere, and the build names the missing tag. So ``raises:<Name>`` refines ``raises-exception`` and
never replaces it.

Which exception a cell raised is read from its error output as MyST-NB put it in the doctree (the
``literal_block`` with class ``traceback``, the text the reader sees): IPython heads each traceback with
``<Name>   Traceback (most recent call last)``, the last header being the exception the cell ended with
(a chained exception prints one per link). The executed notebook MyST-NB writes to ``jupyter_execute/``
would give the ``ename`` directly, but MyST-NB 1.4 writes it without outputs when the page comes from
the execution cache, so it cannot be relied on.

Usage: add ``"strict_execution"`` to ``extensions`` and build with ``-W`` (``nox -s docs`` does).
The decisions are pure functions: :func:`describe_failure` (a failed page), :func:`raised_exception`
(the name in an error output) and :func:`check_expected_error` (a cell's tags against what it raised).
"""

import re

from docutils import nodes
from jupyter_cache import get_cache
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.util import logging

logger = logging.getLogger(__name__)

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
NBCLIENT_ERROR = re.compile(r"^nbclient\.exceptions\.(\w+): ", re.MULTILINE)
DASHES = re.compile(r"^-{17,}$", re.MULTILINE)
EXPECTED_ERROR = "raises-exception"
RAISES = "raises:"
# IPython's header of each traceback: the exception's name, then this, right-aligned on the line.
TRACEBACK_HEADER = re.compile(r"^(\S+?)\s*Traceback \(most recent call last\)$", re.MULTILINE)
# A traceback without header (a SyntaxError, a shorter xmode) ends with "Name: message" or "Name".
LAST_LINE = re.compile(r"^([A-Za-z_]\w*)(?::|$)")


def failing_cell_source(message: str) -> str | None:
    """The cell's source from nbclient's message: the text between its first two dashed rules."""
    parts = DASHES.split(message, maxsplit=2)
    return parts[1].strip("\n") if len(parts) == 3 else None


def find_cell_line(page_text: str, source: str) -> int | None:
    """The 1-based line of the page where ``source`` starts, or None if it is not there verbatim."""
    page_lines = page_text.splitlines()
    source_lines = source.splitlines()
    if not source_lines:
        return None
    for start in range(len(page_lines) - len(source_lines) + 1):
        if page_lines[start : start + len(source_lines)] == source_lines:
            return start + 1
    return None


def describe_failure(page_text: str, traceback: str) -> tuple[int | None, str]:
    """Turn MyST-NB's stored traceback into (line of the failing cell, readable message)."""
    text = ANSI_ESCAPE.sub("", traceback)
    found = NBCLIENT_ERROR.search(text)
    if found is None:  # the kernel died or would not start: the last lines say why
        return None, "the page could not be executed:\n" + "\n".join(text.strip().splitlines()[-5:])
    message = text[found.end() :].strip()
    source = failing_cell_source(message)
    line = find_cell_line(page_text, source) if source else None
    if found.group(1) == "CellTimeoutError":
        return line, "a cell ran past the timeout (nb_execution_timeout):\n" + message
    return line, "a cell raised an exception; tag it raises-exception if that is intended:\n" + message


def raised_exception(traceback: str) -> str | None:
    """The name of the exception an error output ends with, as IPython prints it; None if unreadable."""
    text = ANSI_ESCAPE.sub("", traceback)
    headers = TRACEBACK_HEADER.findall(text)
    if headers:
        return headers[-1]
    for line in reversed(text.strip().splitlines()):
        found = LAST_LINE.match(line)
        if found:
            return found.group(1)
    return None


def expected_names(tags: list[str]) -> list[str]:
    """The exception names of a cell's ``raises:<Name>`` tags, in tag order."""
    return [tag.removeprefix(RAISES) for tag in tags if tag.startswith(RAISES)]


def tag_problem(tags: list[str]) -> str | None:
    """What is wrong with a cell's expected-error tags themselves, whatever the cell does; or None."""
    names = expected_names(tags)
    for name in names:
        if not name.isidentifier():
            return (
                f"the tag {RAISES}{name} must name an exception class as the error output shows it, "
                f"without its module: e.g. {RAISES}{name.rpartition('.')[2] or 'ValueError'}"
            )
    if names and EXPECTED_ERROR not in tags:
        return (
            f"a cell tagged {', '.join(RAISES + name for name in names)} must also be tagged "
            f"{EXPECTED_ERROR}: that tag is what lets the cell raise, in this build and in Jupyter"
        )
    return None


def check_expected_error(tags: list[str], raised: str | None) -> str | None:
    """What is wrong with an executed cell, given its tags and what it raised; None if all is well.

    ``raised`` is the exception's name read from the cell's error output, None when the cell has no
    error output, and "" when it has one whose exception cannot be read.
    """
    problem = tag_problem(tags)
    if problem or EXPECTED_ERROR not in tags:
        return problem
    names = expected_names(tags)
    expected = " or ".join(names)
    if raised is None:
        if not names:
            return f"a cell tagged {EXPECTED_ERROR} ran without raising; fix the cell or remove the tag"
        return (
            f"a cell tagged {RAISES}{names[0]} ran without raising {expected}; fix the cell, or remove its "
            f"{EXPECTED_ERROR} and {RAISES} tags and the text that describes the error"
        )
    if not names or raised in names:
        return None
    if not raised:
        return f"a cell tagged {RAISES}{names[0]} raised an exception whose type its output does not show"
    return (
        f"a cell tagged {RAISES}{names[0]} raised {raised}, not {expected}; fix the cell, or if {raised} "
        f"is now right, change the tag to {RAISES}{raised} and the text that describes the error"
    )


def error_output(cell: nodes.Element) -> str | None:
    """The text of a code cell's error output in the doctree, or None if it has none."""
    for node in cell.findall(nodes.literal_block):
        if "traceback" in node["classes"]:
            return node.astext()
    return None


def cell_tags(cell: nodes.Element) -> list[str]:
    return cell.get("cell_metadata", {}).get("tags", [])


def code_cells(doctree: nodes.document):
    return (cell for cell in doctree.findall(nodes.container) if cell.get("nb_element") == "cell_code")


def report_failed_execution(app, doctree):
    """doctree-read handler: one error per failed page, one per expected error that went wrong."""
    docname = app.env.docname
    exec_data = NbMetadataCollector.get_exec_data(app.env, docname)
    if exec_data and exec_data.get("traceback"):
        page_text = app.env.doc2path(docname).read_text(encoding="utf8")
        line, message = describe_failure(page_text, exec_data["traceback"])
        logger.error(message, location=(docname, line), type="strict_execution", subtype="cell")
        return
    for cell in code_cells(doctree):
        tags = cell_tags(cell)
        if not exec_data:  # not executed (nox -s lint, or no code): no output to judge, only the tags
            problem = tag_problem(tags)
        else:
            traceback = error_output(cell)
            raised = None if traceback is None else (raised_exception(traceback) or "")
            problem = check_expected_error(tags, raised)
        if problem:
            logger.error(problem, location=cell, type="strict_execution", subtype="expected_error")


def reread_failed_pages(app, env, added, changed, removed):
    """env-get-outdated handler: a page whose last execution failed is read (and run) again."""
    return [
        docname
        for docname in env.found_docs
        if (NbMetadataCollector.get_exec_data(env, docname) or {}).get("traceback")
    ]


def create_execution_cache(app):
    """builder-inited handler: one process creates the cache's database, before any worker starts."""
    if app.config.nb_execution_mode == "cache" and app.config.nb_execution_cache_path:
        get_cache(app.config.nb_execution_cache_path).db  # noqa: B018 (the property creates the database)


def setup(app):
    app.connect("builder-inited", create_execution_cache)
    app.connect("doctree-read", report_failed_execution)
    app.connect("env-get-outdated", reread_failed_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
