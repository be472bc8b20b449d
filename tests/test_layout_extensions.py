"""The local extensions that lay out and clean up what readers see, one table of cases each:
wide_blocks, stacked_tables, framework_tabs' side by side, build_paths, expected_errors."""

import pytest
from build_paths import strip_build_paths
from expected_errors import exception_line
from framework_tabs import SIDE_BY_SIDE_CHARACTERS, Tab, TabSet, side_by_side_problem
from stacked_tables import header_names, label_cells
from wide_blocks import TEXT_COLUMN_CHARACTERS, longest_line, table_characters

# -- wide_blocks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ([], 0),
        ([""], 0),
        (["a\nabc\nab"], 3),
        (["abc", "abcdef\nx"], 6),
        (["x" * (TEXT_COLUMN_CHARACTERS + 1)], TEXT_COLUMN_CHARACTERS + 1),
    ],
)
def test_longest_line(texts, expected):
    assert longest_line(texts) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], 0),
        ([["a", "bb"]], 1 + 2 + 3 * 2),
        ([["a", "bb"], ["ccc", "d"]], 3 + 2 + 3 * 2),  # each column as wide as its widest cell
        ([["a"], ["b", "cccc"]], 1 + 4 + 3 * 2),  # a short row does not shrink a column
    ],
)
def test_table_characters(rows, expected):
    assert table_characters(rows) == expected


# -- stacked_tables --------------------------------------------------------------------------------


TABLE = (
    '<table class="table"><thead><tr class="row-odd"><th class="head"><p></p></th>'
    '<th class="head"><p>PyTorch</p></th><th class="head"><p>Flax <em>NNX</em> &amp; co</p></th></tr></thead>'
    '<tbody><tr class="row-even"><td><p>a</p></td><td><p>b</p></td><td><p>c</p></td></tr>'
    '<tr class="row-odd"><td><p>d</p></td><td><p>e</p></td><td><p>f</p></td></tr></tbody></table>'
)


def test_header_names_read_the_text_of_each_header_cell():
    assert header_names(TABLE) == ["", "PyTorch", "Flax NNX & co"]


@pytest.mark.parametrize(
    ("html", "expected_labels"),
    [
        (TABLE, ['data-label="PyTorch"', 'data-label="Flax NNX &amp; co"'] * 2),
        ("<p>no table</p>", []),
        ("<table><tbody><tr><td>a</td></tr></tbody></table>", []),  # no header row: left alone
    ],
)
def test_label_cells(html, expected_labels):
    labelled = label_cells(html)
    assert [part.split(">")[0] for part in labelled.split("<td ")[1:]] == expected_labels
    assert labelled.count("<td") == html.count("<td")
    assert label_cells(labelled) == labelled, "labelling twice changes nothing"


# -- framework_tabs: side by side ------------------------------------------------------------------


def two(first=(1,), second=(2,)):
    return TabSet((Tab("pytorch", first), Tab("linen", second)))


@pytest.mark.parametrize(
    ("tab_set", "sources", "problem"),
    [
        (two(), {1: "x = 1", 2: "y = 2"}, None),
        (two(), {1: "x" * SIDE_BY_SIDE_CHARACTERS}, None),
        (
            two(),
            {1: "ok", 2: "short\n" + "y" * (SIDE_BY_SIDE_CHARACTERS + 1)},
            (2, f"its line 2 has {SIDE_BY_SIDE_CHARACTERS + 1}"),
        ),
        (
            TabSet((Tab("pytorch", (1,)), Tab("linen", (2,)), Tab("nnx", (3,)))),
            {},
            (1, "its tab-set has 3 frameworks"),
        ),
        (two((1, 2), (3,)), {2: "z" * 80}, (2, "cell 2 is in a side-by-side tab-set")),
    ],
)
def test_side_by_side_problem(tab_set, sources, problem):
    found = side_by_side_problem(tab_set, sources)
    if problem is None:
        assert found is None
    else:
        assert found[0] == problem[0] and problem[1] in found[1]


# -- build_paths -----------------------------------------------------------------------------------

FOLDERS = ["/work/main", "/root"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "File /work/main/.nox/docs/lib/python3.11/site-packages/flax/nnx/graph.py:12, in f",
            "File flax/nnx/graph.py:12, in f",
        ),
        ("File /root/.pyenv/versions/3.11.7/lib/python3.11/json/decoder.py:3", "File json/decoder.py:3"),
        ("see /work/main/code/jax_state.py", "see code/jax_state.py"),
        ("cache in /root/.cache/x", "cache in .cache/x"),
        ("/usr/lib/python3/dist-packages/six.py", "six.py"),
        (
            "while tracing the function f at /tmp/ipykernel_30599/89453436.py:3 for jit",
            "while tracing the function f at 89453436.py:3 for jit",
        ),
        (
            "a plain output, 1/2 and site-packages as a word",
            "a plain output, 1/2 and site-packages as a word",
        ),
    ],
)
def test_strip_build_paths(text, expected):
    assert strip_build_paths(text, FOLDERS) == expected


# -- expected_errors ------------------------------------------------------------------------------

HEADER = "---------------------------------------------------------------------------\n"


@pytest.mark.parametrize(
    ("traceback", "line"),
    [
        (
            HEADER + "ValueError                                Traceback (most recent call last)\n"
            "Cell In[3], line 1\n----> 1 f()\n\nValueError: Duplicate Param\nfound at paths:\n  - a\n",
            "ValueError: Duplicate Param\nfound at paths:\n  - a",
        ),
        (
            HEADER + "KeyError                                  Traceback (most recent call last)\n"
            "Cell In[1], line 1\n----> 1 {}['a']\n\nKeyError: 'a'\n",
            "KeyError: 'a'",
        ),
        (
            "  Cell In[2], line 1\n    x = (\n        ^\nSyntaxError: incomplete input\n",
            "SyntaxError: incomplete input",
        ),
        ("nothing that names an exception\n", None),
    ],
)
def test_exception_line(traceback, line):
    assert exception_line(traceback) == line
