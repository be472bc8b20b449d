"""One block per stream in a cell's output, wherever the kernel cut it, without touching the notebook.

A kernel sends what a cell prints in chunks, cut wherever its buffer was flushed: the same cell can
give one ``stdout`` output in one run and three in the next. Shown as they come, the page would change
from build to build. MyST-NB's own remedy (``nb_merge_streams``) merges the chunks into the first one in
place, in the notebook it then writes to ``jupyter_execute/``: the later chunks stay there too, so that
notebook, and the reader's download made from it, repeats their lines.

With ``nb_merge_streams = False`` the notebook keeps the chunks as the kernel sent them (Jupyter shows
consecutive chunks as one), and this extension merges them in the page instead: consecutive stream
blocks of one cell output (stdout with stdout, stderr with stderr) become one block holding their text
joined as it was printed. The pure part is :func:`merge_runs`. Usage: add ``"stream_outputs"`` to
``extensions``.
"""

from collections.abc import Callable, Hashable
from itertools import groupby
from typing import TypeVar

from docutils import nodes

STREAM_CLASSES = {"stream", "stderr"}  # MyST-NB's classes for stdout and stderr blocks
Item = TypeVar("Item")


def merge_runs(
    items: list[Item], key: Callable[[Item], Hashable | None], merge: Callable[[list[Item]], Item]
) -> list[Item]:
    """``items`` with each run of neighbours that share a key (not None) replaced by ``merge(run)``."""
    merged = []
    for value, run in groupby(items, key):
        run = list(run)
        merged += [merge(run)] if value is not None and len(run) > 1 else run
    return merged


def stream_key(node: nodes.Node) -> tuple[str, ...] | None:
    if isinstance(node, nodes.literal_block) and STREAM_CLASSES & set(node["classes"]):
        return tuple(node["classes"])
    return None


def joined_block(blocks: list[nodes.literal_block]) -> nodes.literal_block:
    text = "".join(block.astext() for block in blocks)
    first = blocks[0]
    block = nodes.literal_block(text, text, **first.attributes)  # its classes and language
    block.source, block.line = first.source, first.line
    return block


def merge_cell_streams(app, doctree: nodes.document) -> None:
    for output in doctree.findall(nodes.container):
        if "cell_output" in output["classes"]:
            children = merge_runs(list(output.children), stream_key, joined_block)
            if len(children) < len(output.children):
                output.children = []
                output.extend(children)


def setup(app):
    app.connect("doctree-read", merge_cell_streams)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
