"""Comparison content gets the width it needs on wide screens.

The text column of sphinx-book-theme is some 690 px wide at 1280 px: about 77 characters of code. Many
cells, outputs and comparison tables are wider, and scrolled sideways there. sphinx-book-theme has a
layout for that: a block with the class ``full-width`` spreads into the right-hand column, where the
page's contents are, and the contents fold up to their title while such a block is in view (hovering
opens them). This extension gives that class to the blocks that need it, after the page is read:

- a code cell (its source and its text outputs) with a line longer than the text column holds;
- a framework tab-set (``framework_tabs``) that holds such a cell, or that is shown side by side;
- a table whose columns, at their widest cells, do not fit the text column.

Cells inside a tab-set are judged with their tab-set, which is widened as a whole. A block that fits
keeps the text column, so that on a page of short cells the contents stay open. Where the widened
blocks go (from 1200 px, where the contents column is shown) is in ``_static/reader.css``.

Usage: add ``"wide_blocks"`` to ``extensions`` after ``"framework_tabs"``. The decisions are pure
functions, :func:`longest_line` and :func:`table_characters`; :func:`mark_wide_blocks` applies them.
"""

from docutils import nodes

# What the text column holds at 1280 px: 688 px less the code block's padding, at 8.43 px a character
# (14 px monospace). Measured in Chromium; tests/test_browser.py checks the layout that results.
TEXT_COLUMN_CHARACTERS = 77
# A table cell's padding, and the rule between cells, in characters of the table's text.
CELL_PADDING_CHARACTERS = 3
FULL_WIDTH = "full-width"
TAB_SET = "framework-tabs"
SIDE_BY_SIDE = "side-by-side"


def longest_line(texts: list[str]) -> int:
    """The length of the longest line in any of the texts (0 for none)."""
    return max((len(line) for text in texts for line in text.splitlines()), default=0)


def table_characters(rows: list[list[str]]) -> int:
    """The width a table needs, in characters: each column as wide as its widest cell, plus padding."""
    if not rows:
        return 0
    columns = max(len(row) for row in rows)
    widest = [max((len(row[i]) for row in rows if i < len(row)), default=0) for i in range(columns)]
    return sum(widest) + CELL_PADDING_CHARACTERS * columns


def is_cell(node) -> bool:
    return isinstance(node, nodes.container) and node.get("nb_element") == "cell_code"


def is_tab_set(node) -> bool:
    return isinstance(node, nodes.Element) and TAB_SET in node["classes"]


def table_rows(table: nodes.table) -> list[list[str]]:
    return [[entry.astext() for entry in row.findall(nodes.entry)] for row in table.findall(nodes.row)]


def needs_width(block: nodes.Element) -> bool:
    """Whether a block's code, text outputs or tables are wider than the text column."""
    texts = [literal.astext() for literal in block.findall(nodes.literal_block)]
    tables = [table_characters(table_rows(table)) for table in block.findall(nodes.table)]
    return max([longest_line(texts), *tables]) > TEXT_COLUMN_CHARACTERS


def mark_wide_blocks(app, doctree: nodes.document, docname: str):
    """doctree-resolved handler: the class ``full-width`` on each block that needs the width.

    The outermost block is marked: a tab-set rather than its cells, a cell rather than its tables.
    """
    for block in doctree.findall(
        lambda node: is_tab_set(node) or is_cell(node) or isinstance(node, nodes.table)
    ):
        if any(FULL_WIDTH in parent["classes"] or is_tab_set(parent) for parent in _ancestors(block)):
            continue  # judged with the block around it
        if (is_tab_set(block) and SIDE_BY_SIDE in block["classes"]) or needs_width(block):
            block["classes"].append(FULL_WIDTH)


def _ancestors(node):
    while node.parent is not None:
        node = node.parent
        yield node


def setup(app):
    app.setup_extension("framework_tabs")
    app.connect("doctree-resolved", mark_wide_blocks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
