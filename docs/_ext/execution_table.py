"""The status page's execution table says in words whether each page ran: "ok", or "failed".

MyST-NB's ``nb-exec-table`` marks each page's run with the emoji ✅ or ❌, which a system without a
colour-emoji font draws as an empty box, or not at all. This extension builds the table in MyST-NB's
place, with MyST-NB's own function, and writes its marks as words (:data:`MARKS`); a failed run keeps
MyST-NB's abbreviation, whose title is the error.

Usage: add ``"execution_table"`` to ``extensions`` (after ``"myst_nb"``) and write the table as MyST-NB
says::

    ```{nb-exec-table}
    ```

The pure part is :func:`marks_in_words`.
"""

from docutils import nodes
from myst_nb.ext.execution_tables import ExecutionStatsNode, ExecutionStatsPostTransform, make_stat_table
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.transforms.post_transforms import SphinxPostTransform

MARKS = {"✅": "ok", "❌": "failed"}


def marks_in_words(table: nodes.Element) -> nodes.Element:
    """The table, with each text that is one of MyST-NB's marks replaced by its word."""
    for text in [text for text in table.findall(nodes.Text) if str(text) in MARKS]:
        text.parent.replace(text, nodes.Text(MARKS[str(text)]))
    return table


class ExecutionTableInWords(SphinxPostTransform):
    """Just before MyST-NB's own transform: each ``nb-exec-table`` becomes MyST-NB's table, in words."""

    default_priority = ExecutionStatsPostTransform.default_priority - 1

    def run(self, **kwargs) -> None:
        for placeholder in list(self.document.findall(ExecutionStatsNode)):
            table = make_stat_table(self.env.docname, NbMetadataCollector.get_doc_data(self.env))
            placeholder.replace_self(marks_in_words(table))


def setup(app):
    app.setup_extension("myst_nb")
    app.add_post_transform(ExecutionTableInWords)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
