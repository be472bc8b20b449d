"""Tables that a phone can read: each row a block, each cell on its own line under its column's name.

A comparison table of three frameworks does not fit 375 px: scrolled sideways, a reader loses the row;
squeezed, its code breaks in the middle of names. ``_static/reader.css`` stacks the tables on narrow
screens instead, and writes each cell's column name above it from the cell's ``data-label``, which this
extension adds to every body cell of a table with a header row, from the text of that column's header.

Usage: add ``"stacked_tables"`` to ``extensions``. The rewrite is the pure function :func:`label_cells`,
applied to each page's body (``html-page-context``).
"""

import html
import re

TABLE = re.compile(r"<table\b.*?</table>", re.DOTALL)
HEADER_CELL = re.compile(r"<th\b[^>]*>(.*?)</th>", re.DOTALL)
BODY = re.compile(r"<tbody>.*?</tbody>", re.DOTALL)
ROW = re.compile(r"<tr\b.*?</tr>", re.DOTALL)
BODY_CELL = re.compile(r"<td\b")
TAG = re.compile(r"<[^>]+>")


def header_names(table: str) -> list[str]:
    """The text of each header cell of the table's head, in order; [] when it has no head."""
    head = table.split("<tbody>")[0]
    return [" ".join(html.unescape(TAG.sub("", cell)).split()) for cell in HEADER_CELL.findall(head)]


def label_row(row: str, names: list[str]) -> str:
    """Give the row's n-th <td> the n-th column name as its data-label."""
    labels = iter(names)

    def add_label(match: re.Match) -> str:
        name = next(labels, "")
        return f'<td data-label="{html.escape(name)}"' if name else match[0]

    return BODY_CELL.sub(add_label, row)


def label_cells(body: str) -> str:
    """Every body cell of every table that has a header row, labelled with its column's name."""

    def label_table(match: re.Match) -> str:
        table = match[0]
        names = header_names(table)
        if not names or "data-label=" in table:
            return table
        return BODY.sub(lambda body: ROW.sub(lambda row: label_row(row[0], names), body[0]), table)

    return TABLE.sub(label_table, body)


def label_page_tables(app, pagename, templatename, context, doctree):
    """html-page-context handler."""
    if "body" in context:
        context["body"] = label_cells(context["body"])


def setup(app):
    app.connect("html-page-context", label_page_tables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
