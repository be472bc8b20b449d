"""No path of the machine that built the site in what a cell printed.

A traceback names every file of every frame: ``File /work/main/.nox/docs/lib/python3.11/site-packages/
flax/nnx/variablelib.py:1915``. The path up to the library is the build's virtualenv, which says nothing
to a reader and differs from one build machine to the next. This extension shortens such paths, in every
cell output of every page, to where the file sits in its library (``flax/nnx/variablelib.py:1915``),
drops the repository's own folder and the home folder from any path that starts with them, and drops
the kernel's temporary folder from the file a cell ran as (``/tmp/ipykernel_4374/89453436.py`` becomes
``89453436.py``: the name is a hash of the cell's code, the folder the kernel's process number).

Usage: add ``"build_paths"`` to ``extensions`` after ``"myst_nb"``. The rewrite is the pure function
:func:`strip_build_paths`, which ``reader_notebooks`` also applies to the notebooks readers download.
"""

import re
from pathlib import Path

from docutils import nodes

# Up to and including a library folder: site-packages (a virtualenv's or the system's) or the standard
# library (…/lib/python3.11/), so that what is left is the file's path inside its library.
LIBRARY_PREFIX = re.compile(r"(?:/[^\s:'\"()<>]*)?/(?:site-packages|dist-packages|lib/python3\.\d+)/")
# ipykernel's folder for the files it compiles cells as (ipykernel.compiler.get_tmp_directory).
KERNEL_FOLDER = re.compile(r"(?:/[^\s:'\"()<>]*)?/ipykernel_\d+/")


def strip_build_paths(text: str, folders: list[str]) -> str:
    """``text`` without library prefixes and kernel folders, and without ``folders`` before a path."""
    text = KERNEL_FOLDER.sub("", LIBRARY_PREFIX.sub("", text))
    for folder in sorted(folders, key=len, reverse=True):  # the longest first: a repository in a home
        text = re.sub(re.escape(folder.rstrip("/")) + r"/", "", text)
    return text


def build_folders(app) -> list[str]:
    """The folders to drop: the repository (the configuration's folder) and the home folder."""
    return [str(Path(app.confdir).resolve()), str(Path.home())]


def is_output(node) -> bool:
    return isinstance(node, nodes.literal_block) and "output" in node["classes"]


def strip_output_paths(app, doctree: nodes.document):
    """doctree-read handler: every cell output's text without the build machine's paths."""
    folders = build_folders(app)
    for block in doctree.findall(is_output):
        cleaned = strip_build_paths(block.astext(), folders)
        if cleaned != block.astext():
            # rawsource too: Sphinx highlights a literal block only when it equals the text
            block.rawsource = cleaned
            block.children = [nodes.Text(cleaned)]


def setup(app):
    app.connect("doctree-read", strip_output_paths)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
