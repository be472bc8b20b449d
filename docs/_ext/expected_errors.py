"""An error shown on purpose reads as one: a label, the error in full, the traceback behind a toggle.

A cell tagged ``raises-exception`` (see ``strict_execution``) shows the error a reader would meet. As
IPython prints it, that is some fifty lines of frames in the libraries, and the one line that matters,
the exception and its message, comes last and runs off the right of the page. This extension puts,
above the traceback of each such cell:

- the label "Expected error", so that a reader scanning the page does not take it for a failure;
- the exception's type and message, wrapped to the width of the page;

and folds the traceback itself into a ``<details>`` toggle, "Full traceback", still in the page (and in
the page's search index). Cells that are not tagged are left alone: an error there fails the build.

Usage: add ``"expected_errors"`` to ``extensions`` after ``"strict_execution"``. The text work is the
pure function :func:`exception_line`; :func:`present_expected_errors` rebuilds the cell's output.
"""

from docutils import nodes
from strict_execution import EXPECTED_ERROR, cell_tags, code_cells, raised_exception

LABEL = "Expected error"
TOGGLE = "Full traceback"


def exception_line(traceback: str) -> str | None:
    """The exception's type and message, as the traceback ends with them; None if unreadable.

    A message may run over several lines (they are kept); a chained exception ends with its last link.
    """
    name = raised_exception(traceback)
    if not name:
        return None
    lines = traceback.rstrip().splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] == name or lines[index].startswith(f"{name}: "):
            return "\n".join(lines[index:]).strip()
    return None


def present_expected_errors(app, doctree: nodes.document):
    """doctree-read handler: label, message and folded traceback for each expected error's output."""
    for cell in code_cells(doctree):
        if EXPECTED_ERROR not in cell_tags(cell):
            continue
        for block in list(cell.findall(nodes.literal_block)):
            if "traceback" not in block["classes"]:
                continue
            message = exception_line(block.astext())
            if message is None:
                continue
            summary = nodes.container(classes=["expected-error"])
            summary += nodes.paragraph(LABEL, LABEL, classes=["expected-error-label"])
            summary += nodes.literal_block(
                message, message, classes=["expected-error-message"], language="text"
            )
            # Raw HTML for the toggle: docutils has no node for <details>.
            opening = f'<details class="expected-error-traceback"><summary>{TOGGLE}</summary>\n'
            at = block.parent.index(block)
            block.parent[at : at + 1] = [
                summary,
                nodes.raw("", opening, format="html"),
                block,
                nodes.raw("", "</details>\n", format="html"),
            ]


def setup(app):
    app.setup_extension("strict_execution")
    # After strict_execution has read the tracebacks (priority 500) and build_paths has cleaned them.
    app.connect("doctree-read", present_expected_errors, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
