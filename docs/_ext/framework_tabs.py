"""Show PyTorch, Flax Linen and Flax NNX code side by side: synced tabs of executed cells.

MyST-NB runs every ``code-cell`` of a page but allows none inside a directive, so a sphinx-design
``tab-set`` cannot hold executed code. Instead, tag the cells. Consecutive cells tagged for different
frameworks become one tab-set, one tab per framework holding its cells with their real outputs:

=============== =============== ==========================
tag             tab label       sync key (group ``framework``)
=============== =============== ==========================
``tab-pytorch`` PyTorch         ``pytorch``
``tab-linen``   Flax Linen      ``linen``
``tab-nnx``     Flax NNX        ``nnx``
=============== =============== ==========================

A page fragment (the markdown cell's tag goes on its ``+++`` line; a bare ``+++`` ends it)::

    ```{code-cell} ipython3
    :tags: [tab-pytorch]
    print(torch_model.weight.shape)
    ```

    +++ {"tags": ["tab-linen"]}

    In Linen the parameters live outside the module:

    ```{code-cell} ipython3
    :tags: [tab-linen]
    print(params["Dense_0"]["kernel"].shape)
    ```

    +++

    Back to the page, below the tabs.

Rules:

- A run of consecutive tagged cells is one tab-set. An untagged cell ends the run, even one that renders
  nothing (``remove-cell``); tag such a cell too if it belongs to a tab.
- Within a run each framework's cells are contiguous and make its tab: ``[pytorch, pytorch, linen]`` is
  two tabs, the first with two cells. A framework that already has its tab in the run starts a new
  tab-set: ``[pytorch, linen, pytorch, linen]`` is two tab-sets.
- Tabs come in order of first appearance. Choosing a tab switches every tab-set of the site to it
  (sphinx-design's sync, remembered across pages).
- A run of two frameworks in which a cell also carries the tag ``side-by-side`` is shown with the two
  next to each other from 1200 px (``_static/framework-tabs.css``), and as tabs below: its tab-set gets
  the class ``side-by-side``. A column then holds :data:`SIDE_BY_SIDE_CHARACTERS` characters of code, and
  the cells' lines must fit. Tag the runs where reading across helps, such as model definitions and
  train steps. (A third column would hold under 40 characters at any common screen width.)
- Errors, reported as warnings at the cell's line, so that ``-W`` fails the build: an unknown ``tab-*``
  tag, a cell with two tab tags, a tab-set with a single framework, a tagged markdown cell that holds a
  heading (a section cannot go inside a tab), a ``side-by-side`` run of three frameworks or with a line of
  code longer than a column holds. A page with an error is read again on the next build.

Usage: add ``"framework_tabs"`` to ``extensions`` after ``"myst_nb"`` and ``"sphinx_design"``. The
extension adds ``../_static/framework-tabs.css`` to the HTML pages itself.

The grouping is the pure function :func:`group_tabs`; :func:`build_tab_sets` applies it to a page's
doctree and rebuilds the cells into the nodes that sphinx-design's ``tab-set``/``tab-item`` directives
(with ``:sync-group:`` and ``:sync:``) produce, so that its HTML transform, JavaScript and CSS apply as
they are.

Every tab-set of the site, these and those of ``tab-set`` directives, gets one fix to sphinx-design's
HTML: it writes ``aria-controls`` (the id of the panel a tab shows) on the tab's ``<label for=...>``,
but a label of a form control is not in the accessibility tree on its own (it only names the control),
so the reference reaches no assistive technology, and the Nu HTML Checker rejects it. The control is the
tab's radio ``<input>``: :func:`controls_on_inputs` moves the reference there, after sphinx-design's
HTML transform, and :func:`visit_tab_input` writes it.
"""

import bisect
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from myst_nb.core.read import create_nb_reader
from own_stylesheet import publish_stylesheet
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx_design import tabs
from sphinx_design.shared import create_component

logger = logging.getLogger(__name__)

FRAMEWORKS = {"pytorch": "PyTorch", "linen": "Flax Linen", "nnx": "Flax NNX"}
TAG_PREFIX = "tab-"
SYNC_GROUP = "framework"
SIDE_BY_SIDE = "side-by-side"  # a tag for a run of cells, and the class of its tab-set
# The characters of code a side-by-side column holds at 1200 px (12 px monospace, measured in Chromium).
SIDE_BY_SIDE_CHARACTERS = 55
# framework-tabs.css styles the tab-sets.
TAB_SET_CLASSES = ["sd-tab-set", "framework-tabs"]
STYLESHEET = Path(__file__).parents[1] / "_static" / "framework-tabs.css"


def _tag(key: str) -> str:
    return TAG_PREFIX + key


KNOWN_TAGS = ", ".join(_tag(key) for key in FRAMEWORKS)


class TabTagError(ValueError):
    """A cell's tab tags are malformed; ``position`` is the offending cell's."""

    def __init__(self, position: int, message: str):
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Tab:
    """One framework's tab: the positions of its cells, in order."""

    key: str
    cells: tuple[int, ...]

    @property
    def label(self) -> str:
        return FRAMEWORKS[self.key]


@dataclass(frozen=True)
class TabSet:
    """Tabs shown together, in order of first appearance."""

    tabs: tuple[Tab, ...]

    @property
    def cells(self) -> tuple[int, ...]:
        return tuple(position for tab in self.tabs for position in tab.cells)


def framework_of(position: int, tags: list[str]) -> str | None:
    """The framework key a cell is tagged for, None for an untagged cell."""
    tab_tags = list(dict.fromkeys(tag for tag in tags if tag.startswith(TAG_PREFIX)))
    for tag in tab_tags:
        if tag.removeprefix(TAG_PREFIX) not in FRAMEWORKS:
            raise TabTagError(
                position,
                f"cell {position} has an unknown tab tag {tag!r}; the known tab tags are {KNOWN_TAGS}",
            )
    if len(tab_tags) > 1:
        raise TabTagError(
            position,
            f"cell {position} has more than one tab tag ({', '.join(tab_tags)}); "
            "a cell belongs to exactly one tab",
        )
    return tab_tags[0].removeprefix(TAG_PREFIX) if tab_tags else None


def group_tabs(cells: list[tuple[int, list[str]]]) -> list[TabSet]:
    """Group cells, given as ``(position, tags)`` in page order, into tab-sets.

    Positions are cell numbers: an untagged cell, or a gap in the numbers (a cell not listed), ends a
    run of tagged cells. Raises :class:`TabTagError` for the first malformed cell or tab-set.
    """
    tab_sets: list[TabSet] = []
    run: list[tuple[str, list[int]]] = []  # (framework, its cells) of the tab-set being built

    def close_run():
        if len(run) == 1:
            key, positions = run[0]
            others = " or ".join(_tag(other) for other in FRAMEWORKS if other != key)
            raise TabTagError(
                positions[0],
                f"cell {positions[0]} starts a tab-set with a single framework ({_tag(key)}); a tab-set "
                f"needs at least two frameworks, so tag an adjacent cell {others}, or remove the tag",
            )
        if run:
            tab_sets.append(TabSet(tuple(Tab(key, tuple(positions)) for key, positions in run)))
        run.clear()

    previous = None
    for position, tags in cells:
        key = framework_of(position, tags)
        if key is None or (previous is not None and position != previous + 1):
            close_run()
        if key is not None:
            if run and run[-1][0] == key:
                run[-1][1].append(position)
            else:
                if any(key == seen for seen, _ in run):
                    close_run()
                run.append((key, [position]))
        previous = position
    close_run()
    return tab_sets


def side_by_side_problem(tab_set: TabSet, sources: dict[int, str]) -> tuple[int, str] | None:
    """Why a tab-set cannot be shown side by side, as (cell position, message); None if it can.

    ``sources`` maps the position of each code cell of the tab-set to its source.
    """
    if len(tab_set.tabs) != 2:
        return tab_set.cells[0], (
            f"cell {tab_set.cells[0]} is tagged {SIDE_BY_SIDE} but its tab-set has {len(tab_set.tabs)} "
            "frameworks; side by side takes two (a third column would be too narrow for code)"
        )
    for position in tab_set.cells:
        for number, line in enumerate(sources.get(position, "").splitlines(), start=1):
            if len(line) > SIDE_BY_SIDE_CHARACTERS:
                return position, (
                    f"cell {position} is in a {SIDE_BY_SIDE} tab-set, whose columns hold "
                    f"{SIDE_BY_SIDE_CHARACTERS} characters, but its line {number} has {len(line)}: "
                    "shorten it, or remove the tag"
                )
    return None


# -- Sphinx ------------------------------------------------------------------------------------------


def read_notebook(env, docname: str):
    """The page as MyST-NB reads it (None for a page that is not a notebook), to know every cell's tags.

    The doctree keeps the tags of code cells only; a markdown cell is rendered inline, without a trace.
    """
    path = env.doc2path(docname)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    if TAG_PREFIX not in text:  # fast path: a page without tab tags
        return None
    reader = create_nb_reader(str(path), env.myst_config, env.mystnb_config, text)
    return None if reader is None else reader.read(text)


def cell_start_lines(notebook) -> list[int]:
    """The doctree line at which each cell's nodes start, as MyST-NB numbers them (``nb_to_tokens``)."""
    source_map = notebook.metadata.get("source_map")
    if source_map:
        return [line + 1 for line in source_map]
    return [(index + 1) * 10000 + 1 for index in range(len(notebook.cells))]  # an .ipynb page


def top_level_nodes_by_cell(doctree: nodes.document, notebook, wanted: set[int]) -> dict[int, list]:
    """The nodes each wanted (non-code) cell rendered to, in page order, found from their line numbers."""
    starts = cell_start_lines(notebook)
    found: dict[int, list] = {}

    def visit(parent: nodes.Element):
        cell = None
        for child in parent.children:
            if child.line is not None:  # a node without a line goes with its previous sibling
                cell = bisect.bisect_right(starts, child.line) - 1
            if cell in wanted:
                found.setdefault(cell, []).append(child)
            if isinstance(child, nodes.section):
                visit(child)

    visit(doctree)
    return found


def failed_pages(env) -> set[str]:
    if not hasattr(env, "framework_tabs_failed"):
        env.framework_tabs_failed = set()
    return env.framework_tabs_failed


def build_tab_sets(app, doctree: nodes.document):
    """doctree-read handler: turn each run of tab-tagged cells into a sphinx-design tab-set."""
    env = app.env
    docname = env.docname
    notebook = read_notebook(env, docname)
    if notebook is None:
        return
    code_cells = {
        node["cell_index"]: node
        for node in doctree.findall(nodes.container)
        if node.get("nb_element") == "cell_code"
    }
    source_map = notebook.metadata.get("source_map")

    def report(message: str, index: int, subtype: str):
        if source_map:  # the line of the cell's ```{code-cell} or +++
            location = (docname, source_map[index])
        else:
            node = code_cells.get(index)
            location = node if node is not None else (docname, None)
        logger.warning(message, location=location, type="framework_tabs", subtype=subtype)
        failed_pages(env).add(docname)

    consistent = all(
        index < len(notebook.cells)
        and notebook.cells[index].cell_type == "code"
        and notebook.cells[index].metadata.get("tags", []) == node.get("cell_metadata", {}).get("tags", [])
        for index, node in code_cells.items()
    )
    if consistent:
        cells = [(index + 1, cell.metadata.get("tags", [])) for index, cell in enumerate(notebook.cells)]
    else:  # the page was changed while read (source-read); fall back on the code cells alone
        cells = [
            (index + 1, node.get("cell_metadata", {}).get("tags", []))
            for index, node in sorted(code_cells.items())
        ]
    try:
        tab_sets = group_tabs(cells)
    except TabTagError as error:
        report(str(error), error.position - 1, "tag")
        return

    def is_code(index: int) -> bool:
        return not consistent or notebook.cells[index].cell_type == "code"

    wanted = {position - 1 for tab_set in tab_sets for position in tab_set.cells if not is_code(position - 1)}
    other_nodes = top_level_nodes_by_cell(doctree, notebook, wanted) if wanted else {}

    def tab_contents(tab_set: TabSet) -> list[tuple[Tab, list]] | None:
        """Each tab with its cells' nodes; None (reported) when a markdown cell holds a heading."""
        contents = []
        for tab in tab_set.tabs:
            cell_nodes = []
            for position in tab.cells:
                index = position - 1
                if is_code(index):
                    cell_nodes += [code_cells[index]] if index in code_cells else []  # none if removed
                    continue
                rendered = other_nodes.get(index, [])
                if any(isinstance(node, (nodes.section, nodes.title)) for node in rendered):
                    report(
                        f"cell {position} is a markdown cell in the {tab.label} tab but holds a heading, "
                        "which cannot go inside a tab; put the heading in an untagged cell "
                        "(a bare +++ line ends the tagged cell)",
                        index,
                        "heading",
                    )
                    return None
                cell_nodes += rendered
            contents.append((tab, cell_nodes))
        return contents

    tags = dict(cells)
    for tab_set in tab_sets:
        contents = tab_contents(tab_set)
        if contents is None:
            continue
        side_by_side = any(SIDE_BY_SIDE in tags[position] for position in tab_set.cells)
        if side_by_side:
            sources = {
                p: notebook.cells[p - 1].source for p in tab_set.cells if consistent and is_code(p - 1)
            }
            problem = side_by_side_problem(tab_set, sources)
            if problem:
                report(problem[1], problem[0] - 1, "side-by-side")
                continue
        replace_with_tab_set(contents, side_by_side)


def replace_with_tab_set(tab_nodes: list, side_by_side: bool = False):
    """Move the cells' nodes into a tab-set, as sphinx-design's directives would have built it."""
    all_nodes = [node for _, cell_nodes in tab_nodes for node in cell_nodes]
    if not all_nodes:
        return
    first = all_nodes[0]
    parent = first.parent
    at = parent.index(first)
    # nodes that the markdown renderer put elsewhere (a footnote, at the end of the page) stay there
    moved = {id(node) for node in all_nodes if node.parent is parent}
    parent.children = [child for child in parent.children if id(child) not in moved]
    classes = [*TAB_SET_CLASSES, SIDE_BY_SIDE] if side_by_side else TAB_SET_CLASSES
    tab_set = create_component("tab-set", classes=list(classes))
    tab_set.source, tab_set.line = first.source, first.line
    for tab, cell_nodes in tab_nodes:
        label = nodes.rubric(tab.label, "", nodes.Text(tab.label), classes=["sd-tab-label"])
        label["sync_id"] = tab.key
        label["sync_group"] = SYNC_GROUP
        content = create_component("tab-content", classes=["sd-tab-content"])
        content.extend(node for node in cell_nodes if id(node) in moved)
        item = create_component(
            "tab-item", classes=["sd-tab-item"], selected=False, children=[label, content]
        )
        item.source, item.line = (cell_nodes[0].source, cell_nodes[0].line) if cell_nodes else (None, None)
        tab_set += item
    parent.insert(at, tab_set)


def controls_on_inputs(tree: nodes.Element) -> None:
    """Move each tab label's ``aria_controls`` (the id of the panel its tab shows) onto the radio input
    it labels, in the nodes of sphinx-design's HTML transform; a label whose input is not in ``tree``
    keeps it."""
    inputs = {node["id"]: node for node in tree.findall(tabs.sd_tab_input)}
    for label in tree.findall(tabs.sd_tab_label):
        if "aria_controls" in label and label.get("input_id") in inputs:
            inputs[label["input_id"]]["aria_controls"] = label["aria_controls"]
            del label["aria_controls"]


class TabInputsControlPanels(SphinxPostTransform):
    """Right after sphinx-design's HTML transform of the tab-sets: :func:`controls_on_inputs`."""

    default_priority = tabs.TabSetHtmlTransform.default_priority + 1
    formats = ("html",)

    def run(self, **kwargs) -> None:
        controls_on_inputs(self.document)


def visit_tab_input(self, node):
    """sphinx-design's ``<input>``, with the ``aria-controls`` that :func:`controls_on_inputs` gave it."""
    tabs.visit_tab_input(self, node)
    if "aria_controls" in node:
        controls = f'aria-controls="{self.attval(node["aria_controls"])}" '
        self.body[-1] = self.body[-1].replace("<input ", f"<input {controls}", 1)


def purge_failed(app, env, docname):
    failed_pages(env).discard(docname)


def merge_failed(app, env, docnames, other):
    failed_pages(env).update(failed_pages(other) & set(docnames))


def reread_failed(app, env, added, changed, removed):
    """env-get-outdated handler: a page whose tabs were in error is read again, so -W fails again."""
    return sorted(failed_pages(env) & env.found_docs)


def setup(app):
    app.setup_extension("myst_nb")
    app.setup_extension("sphinx_design")
    app.connect("doctree-read", build_tab_sets)
    app.connect("env-purge-doc", purge_failed)
    app.connect("env-merge-info", merge_failed)
    app.connect("env-get-outdated", reread_failed)
    publish_stylesheet(app, STYLESHEET, priority=600)  # after sphinx-design's stylesheet (500)
    app.add_post_transform(TabInputsControlPanels)
    app.add_node(tabs.sd_tab_input, override=True, html=(visit_tab_input, tabs.depart_tab_input))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
