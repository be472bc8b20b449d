"""Make a failed page fail the build with a message a contributor can act on.

MyST-NB, told to raise on a failing cell, stops with ``ExecutionError: <page path>`` and nothing
else; told to warn, it prints the whole nbclient traceback. This extension keeps MyST-NB on warnings
and adds, for each failed page, one error that names the page and the line of the failing cell, shows
the cell and ends with the exception (or the timeout). It also:

- re-reads a failed page on the next build (the cache never stores a failed run, but Sphinx would
  otherwise consider the unchanged page up to date and keep the broken output);
- fails a page whose cell is tagged ``raises-exception`` but did not raise, so an expected error
  that went away is noticed.

Usage: add ``"strict_execution"`` to ``extensions`` and build with ``-W`` (``nox -s docs`` does).
"""

import re

from docutils import nodes
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.util import logging

logger = logging.getLogger(__name__)

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
NBCLIENT_ERROR = re.compile(r"^nbclient\.exceptions\.(\w+): ", re.MULTILINE)
DASHES = re.compile(r"^-{17,}$", re.MULTILINE)


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


def has_error_output(cell: nodes.Element) -> bool:
    return any("traceback" in node["classes"] for node in cell.findall(nodes.literal_block))


def cell_tags(cell: nodes.Element) -> list[str]:
    return cell.get("cell_metadata", {}).get("tags", [])


def report_failed_execution(app, doctree):
    """doctree-read handler: one error per failed page, one per expected error that did not happen."""
    docname = app.env.docname
    exec_data = NbMetadataCollector.get_exec_data(app.env, docname)
    if exec_data and exec_data.get("traceback"):
        page_text = app.env.doc2path(docname).read_text(encoding="utf8")
        line, message = describe_failure(page_text, exec_data["traceback"])
        logger.error(message, location=(docname, line), type="strict_execution", subtype="cell")
        return
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") == "cell_code" and "raises-exception" in cell_tags(cell):
            if not has_error_output(cell):
                logger.error(
                    "a cell tagged raises-exception ran without raising; fix the cell or remove the tag",
                    location=cell,
                    type="strict_execution",
                    subtype="expected_error",
                )


def reread_failed_pages(app, env, added, changed, removed):
    """env-get-outdated handler: a page whose last execution failed is read (and run) again."""
    return [
        docname
        for docname in env.found_docs
        if (NbMetadataCollector.get_exec_data(env, docname) or {}).get("traceback")
    ]


def setup(app):
    app.connect("doctree-read", report_failed_execution)
    app.connect("env-get-outdated", reread_failed_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
