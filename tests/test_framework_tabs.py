"""Tests of docs/_ext/framework_tabs.py: the grouping rules, then real builds of tiny Sphinx projects."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import DOCS, FRONT_MATTER
from docutils import nodes
from framework_tabs import Tab, TabSet, TabTagError, controls_on_inputs, group_tabs
from sphinx_design.tabs import sd_tab_input, sd_tab_label

EXT = DOCS / "_ext"

# -- The grouping rules ------------------------------------------------------------------------------


def numbered(*tags):
    """Cells 1, 2, ... with one tag each; None for an untagged cell."""
    return [(position, [tag] if tag else []) for position, tag in enumerate(tags, start=1)]


def tab_sets(*groups):
    """Expected tab-sets, each given as ``(framework, cell positions)`` pairs."""
    return [TabSet(tuple(Tab(key, positions) for key, positions in group)) for group in groups]


GOLDEN = [
    pytest.param(numbered(None, None), [], id="no tab tags"),
    pytest.param(
        numbered("tab-pytorch", "tab-linen"),
        tab_sets([("pytorch", (1,)), ("linen", (2,))]),
        id="two frameworks",
    ),
    pytest.param(
        numbered(None, "tab-pytorch", "tab-pytorch", "tab-linen", None),
        tab_sets([("pytorch", (2, 3)), ("linen", (4,))]),
        id="two cells in the first tab",
    ),
    pytest.param(
        numbered("tab-pytorch", "tab-linen", "tab-linen", "tab-nnx"),
        tab_sets([("pytorch", (1,)), ("linen", (2, 3)), ("nnx", (4,))]),
        id="three frameworks",
    ),
    pytest.param(
        numbered("tab-nnx", "tab-pytorch"),
        tab_sets([("nnx", (1,)), ("pytorch", (2,))]),
        id="tabs in order of first appearance",
    ),
    pytest.param(
        numbered("tab-pytorch", "tab-linen", "tab-pytorch", "tab-linen"),
        tab_sets([("pytorch", (1,)), ("linen", (2,))], [("pytorch", (3,)), ("linen", (4,))]),
        id="a framework seen again starts a new tab-set",
    ),
    pytest.param(
        numbered("tab-pytorch", "tab-linen", "tab-linen", "tab-nnx", "tab-pytorch", "tab-nnx"),
        tab_sets([("pytorch", (1,)), ("linen", (2, 3)), ("nnx", (4,))], [("pytorch", (5,)), ("nnx", (6,))]),
        id="a new tab-set after three tabs",
    ),
    pytest.param(
        numbered("tab-pytorch", "tab-linen", None, "tab-nnx", "tab-linen"),
        tab_sets([("pytorch", (1,)), ("linen", (2,))], [("nnx", (4,)), ("linen", (5,))]),
        id="an untagged cell ends a tab-set",
    ),
    pytest.param(
        [(1, ["tab-pytorch"]), (2, ["tab-linen"]), (5, ["tab-pytorch"]), (6, ["tab-nnx"])],
        tab_sets([("pytorch", (1,)), ("linen", (2,))], [("pytorch", (5,)), ("nnx", (6,))]),
        id="a gap in the positions ends a tab-set",
    ),
    pytest.param(
        [(1, ["hide-input", "tab-pytorch"]), (2, ["tab-linen", "remove-output", "tab-linen"])],
        tab_sets([("pytorch", (1,)), ("linen", (2,))]),
        id="other tags and a repeated tag are ignored",
    ),
]


@pytest.mark.parametrize(("cells", "expected"), GOLDEN)
def test_group_tabs(cells, expected):
    assert group_tabs(cells) == expected


def test_tab_labels_and_cells():
    (tab_set,) = group_tabs(numbered("tab-pytorch", "tab-linen", "tab-nnx"))
    assert [tab.label for tab in tab_set.tabs] == ["PyTorch", "Flax Linen", "Flax NNX"]
    assert [tab.key for tab in tab_set.tabs] == ["pytorch", "linen", "nnx"]
    assert tab_set.cells == (1, 2, 3)


KNOWN = "the known tab tags are tab-pytorch, tab-linen, tab-nnx"

MALFORMED = [
    pytest.param(
        numbered("tab-pytorch", "tab-jax2"),
        2,
        f"cell 2 has an unknown tab tag 'tab-jax2'; {KNOWN}",
        id="unknown tag",
    ),
    pytest.param(
        numbered("tab-pytorch", "tab-Linen"),
        2,
        f"cell 2 has an unknown tab tag 'tab-Linen'; {KNOWN}",
        id="tags are case-sensitive",
    ),
    pytest.param(
        [(1, ["tab-pytorch", "tab-linen"])],
        1,
        "cell 1 has more than one tab tag (tab-pytorch, tab-linen); a cell belongs to exactly one tab",
        id="two tab tags",
    ),
    pytest.param(
        [(1, ["tab-pytorch"]), (2, ["tab-nnx", "hide-input", "tab-linen", "tab-pytorch"])],
        2,
        "cell 2 has more than one tab tag (tab-nnx, tab-linen, tab-pytorch); "
        "a cell belongs to exactly one tab",
        id="three tab tags",
    ),
    pytest.param(
        [(1, ["tab-pytorch", "tab-jax"])],
        1,
        f"cell 1 has an unknown tab tag 'tab-jax'; {KNOWN}",
        id="an unknown tag is reported before two tags",
    ),
    pytest.param(
        numbered("tab-pytorch"),
        1,
        "cell 1 starts a tab-set with a single framework (tab-pytorch); a tab-set needs at least two "
        "frameworks, so tag an adjacent cell tab-linen or tab-nnx, or remove the tag",
        id="a single cell",
    ),
    pytest.param(
        numbered(None, "tab-linen", "tab-linen", None, "tab-pytorch", "tab-nnx"),
        2,
        "cell 2 starts a tab-set with a single framework (tab-linen); a tab-set needs at least two "
        "frameworks, so tag an adjacent cell tab-pytorch or tab-nnx, or remove the tag",
        id="a single framework in several cells",
    ),
    pytest.param(
        numbered("tab-pytorch", None, "tab-linen"),
        1,
        "cell 1 starts a tab-set with a single framework (tab-pytorch); a tab-set needs at least two "
        "frameworks, so tag an adjacent cell tab-linen or tab-nnx, or remove the tag",
        id="split by an untagged cell",
    ),
    pytest.param(
        numbered("tab-pytorch", "tab-linen", "tab-pytorch"),
        3,
        "cell 3 starts a tab-set with a single framework (tab-pytorch); a tab-set needs at least two "
        "frameworks, so tag an adjacent cell tab-linen or tab-nnx, or remove the tag",
        id="a framework seen again, alone",
    ),
]


@pytest.mark.parametrize(("cells", "position", "message"), MALFORMED)
def test_malformed_cells(cells, position, message):
    with pytest.raises(TabTagError) as error:
        group_tabs(cells)
    assert str(error.value) == message
    assert error.value.position == position


# -- The panel each tab controls --------------------------------------------------------------------


def tab_nodes(*tabs: tuple[str, str | None]) -> nodes.container:
    """sphinx-design's HTML nodes of a tab-set: for each (input id, panel id or None) an input and its
    label, the label naming its panel (``aria_controls``) where a panel id is given."""
    tab_set = nodes.container()
    for input_id, panel in tabs:
        tab_set += sd_tab_input("", id=input_id, set_id="sd-tab-set-0", type="radio", checked=False)
        label = sd_tab_label("", "", nodes.Text(input_id), input_id=input_id)
        if panel:
            label["aria_controls"] = panel
        tab_set += label
    return tab_set


def controls(tree: nodes.Element) -> list[tuple[str, str | None]]:
    """Each input's and each label's panel, in order: ("input", panel) or ("label", panel)."""
    return [
        ("input" if isinstance(node, sd_tab_input) else "label", node.get("aria_controls"))
        for node in tree.findall(lambda node: isinstance(node, (sd_tab_input, sd_tab_label)))
    ]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        pytest.param(
            tab_nodes(("tab-0", "tab-0-content"), ("tab-1", "tab-1-content")),
            [("input", "tab-0-content"), ("label", None), ("input", "tab-1-content"), ("label", None)],
            id="each input controls its panel",
        ),
        pytest.param(
            tab_nodes(("tab-0", None), ("tab-1", None)),
            [("input", None), ("label", None), ("input", None), ("label", None)],
            id="labels without a panel (an older sphinx-design)",
        ),
        pytest.param(
            sd_tab_label("", "", nodes.Text("alone"), input_id="elsewhere", aria_controls="panel"),
            [("label", "panel")],
            id="a label whose input is not in the tree keeps it",
        ),
    ],
)
def test_the_input_of_each_tab_controls_its_panel_not_the_label(tree, expected):
    controls_on_inputs(tree)
    assert controls(tree) == expected


# -- Builds ------------------------------------------------------------------------------------------

CONF = f"""\
import sys

sys.path.insert(0, {str(EXT)!r})
extensions = ["myst_nb", "sphinx_design", "framework_tabs"]
nb_execution_mode = "auto"
exclude_patterns = ["_build"]
"""


def build(project: Path, page: str, *options: str) -> subprocess.CompletedProcess:
    """Write a one-page project (index.md is ``page``) unless it exists, and build it to _build/html.

    (Not straight into _build: MyST-NB writes the executed notebooks beside the output folder.)
    """
    if not (project / "conf.py").exists():
        (project / "conf.py").write_text(CONF)
        (project / "index.md").write_text(FRONT_MATTER + textwrap.dedent(page))
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", *options]
    command += [str(project), str(project / "_build" / "html")]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


GOOD_PAGE = """\
# Frameworks

Before the tabs.

```{code-cell} ipython3
:tags: [tab-pytorch]
print("output of" + " pytorch")
```

+++ {"tags": ["tab-linen"]}

Linen keeps the state outside the module.

```{code-cell} ipython3
:tags: [tab-linen]
print("output of" + " linen")
```

+++

After the tabs.
"""


def test_build_shows_executed_cells_in_synced_tabs(tmp_path):
    result = build(tmp_path, GOOD_PAGE, "-j", "auto")
    assert result.returncode == 0, result.stdout + result.stderr

    html = BeautifulSoup((tmp_path / "_build" / "html" / "index.html").read_text(), "html.parser")
    (tab_set,) = html.select("div.sd-tab-set")
    assert "framework-tabs" in tab_set["class"]
    labels = tab_set.select(":scope > label.sd-tab-label")
    assert [label.get_text(strip=True) for label in labels] == ["PyTorch", "Flax Linen"]
    assert [(label["data-sync-group"], label["data-sync-id"]) for label in labels] == [
        ("framework", "pytorch"),
        ("framework", "linen"),
    ]
    panels = tab_set.select(":scope > div.sd-tab-content")
    # The radio input is the control that shows a panel; its label only names it (valid HTML: the Nu
    # HTML Checker rejects aria-controls on a label of a form control).
    inputs = tab_set.select(":scope > input[type=radio]")
    assert [tab_input["aria-controls"] for tab_input in inputs] == [panel["id"] for panel in panels]
    assert [label["for"] for label in labels] == [tab_input["id"] for tab_input in inputs]
    assert not tab_set.select("label[aria-controls]")

    pytorch, linen = panels
    assert pytorch.select_one(".cell_output").get_text(strip=True) == "output of pytorch"
    assert linen.select_one(".cell_output").get_text(strip=True) == "output of linen"
    assert "Linen keeps the state" in linen.select_one("p").get_text()
    assert "Linen keeps" not in pytorch.get_text()
    # the text around the cells stays outside the tab-set
    assert "Before the tabs" not in tab_set.get_text()
    assert "After the tabs" not in tab_set.get_text()
    assert "After the tabs" in html.get_text()

    assert html.select_one('link[href*="framework-tabs.css"]') is not None
    assert (tmp_path / "_build" / "html" / "_static" / "framework-tabs.css").is_file()


BAD_TAG_PAGE = """\
# Frameworks

```{code-cell} ipython3
:tags: [tab-pytorch]
print("pytorch")
```

```{code-cell} ipython3
:tags: [tab-jax2]
print("jax")
```
"""


def test_bad_tag_fails_the_build(tmp_path):
    result = build(tmp_path, BAD_TAG_PAGE)
    assert result.returncode != 0
    line = (tmp_path / "index.md").read_text().splitlines().index(":tags: [tab-jax2]")  # its fence's
    message = f"cell 3 has an unknown tab tag 'tab-jax2'; {KNOWN}"
    assert f"{tmp_path / 'index.md'}:{line}: WARNING: {message}" in result.stderr, result.stderr
    assert "build finished with problems, 1 warning" in result.stdout + result.stderr


HEADING_PAGE = """\
# Frameworks

+++ {"tags": ["tab-pytorch"]}

In PyTorch the state is in the module.

+++ {"tags": ["tab-nnx"]}

## NNX

In NNX too.
"""


def test_heading_in_a_tab_fails_every_build(tmp_path):
    message = (
        "cell 3 is a markdown cell in the Flax NNX tab but holds a heading, which cannot go inside a tab; "
        "put the heading in an untagged cell (a bare +++ line ends the tagged cell)"
    )
    line = (FRONT_MATTER + HEADING_PAGE).splitlines().index('+++ {"tags": ["tab-nnx"]}') + 1
    for _ in range(2):  # the page is read again, so the warning is not lost on the next build
        result = build(tmp_path, HEADING_PAGE, "-j", "auto")
        assert result.returncode != 0
        assert f"{tmp_path / 'index.md'}:{line}: WARNING: {message}" in result.stderr, result.stderr
        assert "build finished with problems, 1 warning" in result.stdout + result.stderr
