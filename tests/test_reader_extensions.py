"""The extensions behind the readers' features, on small inputs: what each pure function gives, and the
exact problem each bad input gets."""

import io
import re
from pathlib import Path

import nbformat
import pydata_sphinx_theme
import pytest
import tinycss2
from css_rules import CSSError, built_name_patterns, drop_unmatched_rules, selector_names, words
from docutils import nodes
from execution_footer import footer_text
from execution_table import marks_in_words
from fontTools.ttLib import TTFont
from hidden_cells import name_toggles_by_prompt, prompts_as_phrasing
from light_assets import (
    bundle_css,
    bundle_name,
    bundle_stylesheets,
    cached_pruned_css,
    cached_subset_font,
    icon_codepoints,
    is_template,
    plain_token_classes,
    prune_bundles,
    rebase_urls,
    strip_assets,
    styles_lone_class,
    subset_font,
    theme_static_file,
    trim_icon_table,
    unwrap_tokens,
    wanted_codepoints,
)
from own_stylesheet import folder_is_missing
from page_description import HOW, description_problem, duplicates
from reader_notebooks import colab_url, install_line, pins, reader_notebook
from sphinx.errors import ConfigError
from stream_outputs import joined_block, merge_cell_streams, merge_runs, stream_key

# -- page_description ------------------------------------------------------------------------------

GOOD = "What jax.jit does to a method that updates an attribute, and the pattern that fixes it."


@pytest.mark.parametrize(
    ("description", "problem"),
    [
        (GOOD, None),
        (None, f"the page has no meta description; {HOW}"),
        ("", f"the page has no meta description; {HOW}"),
        ("   ", f"the page has no meta description; {HOW}"),
        ("Too short.", "the meta description has 10 characters; write at least 50"),
        ("x" * 50, None),
        ("x" * 160, None),
        ("x" * 161, "the meta description has 161 characters; search engines cut it after 160"),
    ],
    ids=["good", "none", "empty", "blank", "short", "shortest", "longest", "long"],
)
def test_each_description_gets_its_problem(description, problem):
    assert description_problem(description) == problem


def test_two_pages_may_not_share_a_description():
    found = {"b": GOOD, "a": GOOD.upper(), "c": "Another description, long enough to be a real one, surely."}
    assert duplicates(found) == [("b", "the meta description is the same as a's")]
    assert duplicates({"a": GOOD, "c": "x" * 60}) == []


# -- light_assets ------------------------------------------------------------------------------------

HEAD = """<head>
  <link href="_static/styles/theme.css?digest=1" rel="stylesheet" />
<link href="_static/styles/pydata-sphinx-theme.css?digest=1" rel="stylesheet" />
    <link rel="stylesheet" type="text/css" href="_static/pygments.css?v=2" />
  <link rel="stylesheet" href="_static/print.css" media="print" />
  <link rel="preload" as="script" href="_static/scripts/bootstrap.js?digest=1" />
  <script defer src="_static/scripts/fontawesome.js?digest=1"></script>
    <script src="_static/documentation_options.js?v=3"></script>
    <script src="_static/doctools.js?v=4"></script>
    <script data-sd-tabs-storage-prefix="x-" src="_static/design-tabs.js?v=5"></script>
    <script>DOCUMENTATION_OPTIONS.pagename = 'p';</script>
    <script src="_static/searchtools.js"></script>
    <script src="_static/language_data.js"></script>
    <script src="searchindex.js"></script>
</head>
<body><img alt="Colab logo" src="_static/images/logo_colab.png"><img loading="eager" alt="kept" src="x.png">
<script defer src="_static/scripts/bootstrap.js?digest=1"></script></body>"""


def test_a_page_loses_font_awesome_preloads_and_search_and_defers_its_scripts():
    lighter = strip_assets(HEAD, search_page=False)
    assert "fontawesome.js" not in lighter and "preload" not in lighter
    assert "searchtools" not in lighter and "language_data" not in lighter and "searchindex" not in lighter
    assert '<script defer src="_static/doctools.js?v=4"></script>' in lighter
    assert (
        '<script defer data-sd-tabs-storage-prefix="x-" src="_static/design-tabs.js?v=5"></script>' in lighter
    )
    assert '<script src="_static/documentation_options.js?v=3"></script>' in lighter  # read inline
    assert '<script defer src="_static/scripts/bootstrap.js?digest=1"></script>' in lighter  # loaded, later
    assert '<img loading="lazy" alt="Colab logo"' in lighter and '<img loading="eager" alt="kept"' in lighter
    assert strip_assets(lighter, search_page=False) == lighter  # a second run changes nothing


def test_the_search_page_keeps_its_search_scripts_deferred_in_order():
    searchtools = '<script src="_static/searchtools.js"></script>'
    sections = '<script src="_static/search-sections.js"></script>'  # docs/_templates/search.html adds it
    lighter = strip_assets(HEAD.replace(searchtools, searchtools + sections), search_page=True)
    assert "fontawesome.js" not in lighter and "preload" not in lighter
    deferred = re.findall(r'<script defer [^>]*src="([^"?]+)', lighter)
    assert deferred == [
        "_static/doctools.js",
        "_static/design-tabs.js",
        "_static/searchtools.js",
        "_static/search-sections.js",  # after the script whose function it replaces
        "_static/language_data.js",
        "searchindex.js",  # last: it hands the index to searchtools.js
        "_static/scripts/bootstrap.js",
    ]
    assert strip_assets(lighter, search_page=True) == lighter


PYGMENTS = """html[data-theme="light"] .highlight pre { line-height: 125%; }
html[data-theme="light"] .highlight { background: #fefefe; color: #080808 }
html[data-theme="light"] .highlight .n { color: #080808 } /* Name */
html[data-theme="light"] .highlight .p { color: #080808 } /* Punctuation */
html[data-theme="light"] .highlight .k { color: #6730C5 } /* Keyword */
html[data-theme="light"] .highlight .ge { font-style: italic } /* Generic.Emph */
html[data-theme="light"] .highlight .nb { color: #080808; font-weight: bold } /* Name.Builtin */
html[data-theme="light"] .highlight .nx { color: #080808 } /* Name.Other */
html[data-theme="light"] .highlight span.linenos { color: inherit; background-color: transparent; }
html[data-theme="dark"] .highlight { background: #2b2b2b; color: #F8F8F2 }
html[data-theme="dark"] .highlight .n { color: #F8F8F2 } /* Name */
html[data-theme="dark"] .highlight .p { color: #f8f8f2 } /* Punctuation */
html[data-theme="dark"] .highlight .nx { color: #ABE338 } /* Name.Other */
"""


@pytest.mark.parametrize(
    ("html", "template"),
    [
        ('{% macro head_pre_assets() %}\n<link href="x.css">\n{% endmacro %}', True),
        ("<script src=\"{{ pathto('_static/x.js', 1) }}\"></script>", True),
        ("{%- if sidebar %}<nav></nav>{%- endif %}", True),
        ("<!DOCTYPE html><html><body><p>A page.</p></body></html>", False),
        ('<pre>f"{{value}}" and {%d} as code shows them</pre>', False),
    ],
    ids=["statement", "expression", "trimmed-statement", "page", "braces-in-code"],
)
def test_a_themes_jinja_template_is_told_from_a_page(html, template):
    assert is_template(html) is template


@pytest.mark.parametrize(
    ("other_css", "plain"),
    [
        ("", {"n", "p"}),
        (".sig-param.n{font-style:italic}", {"n", "p"}),
        ("span.n:hover{color:red}", {"p"}),
        ("article .p{margin:0}", {"n"}),
    ],
    ids=["alone", "compound-with-another-class", "tag-and-class", "descendant"],
)
def test_plain_tokens_are_drawn_as_the_text_in_every_theme(other_css, plain):
    # .k has its own colour, .ge is italic, .nb bold, .nx coloured in the dark theme only
    assert plain_token_classes(PYGMENTS, other_css) == plain


@pytest.mark.parametrize(
    ("css", "lone"),
    [
        (".n{}", True),
        ("a > .n, b{}", True),
        ("span.n:hover{}", True),
        (".sig-param.n{}", False),
        (".highlight .n.x{}", False),
        (".nn{}", False),
        ("", False),
    ],
)
def test_a_lone_class_is_one_a_compound_names_alone(css, lone):
    assert styles_lone_class(css, "n") is lone


def test_code_blocks_lose_the_spans_of_plain_tokens_only():
    page = (
        '<p><span class="n">prose</span></p><div class="highlight"><pre><span></span>'
        '<span class="n">x</span><span class="p">(</span><span class="k">for</span>'
        '<span class="p">)</span></pre></div><pre><span class="n">y</span></pre>'
    )
    assert unwrap_tokens(page, {"n", "p"}) == (
        '<p><span class="n">prose</span></p><div class="highlight"><pre><span></span>'
        'x(<span class="k">for</span>)</pre></div><pre><span class="n">y</span></pre>'
    )
    assert unwrap_tokens(page, set()) == page


def test_a_pruned_bundle_is_made_once_per_input(tmp_path):
    first, stored = cached_pruned_css(".a{x:1}.b{x:2}", {"a"}, [], tmp_path)
    assert first == ".a{x:1}\n" and stored.exists()
    stored.write_text("kept")  # what a second call returns if it reads the stored bundle
    assert cached_pruned_css(".a{x:1}.b{x:2}", {"a"}, [], tmp_path) == ("kept", stored)
    other, _ = cached_pruned_css(".a{x:1}.b{x:2}", {"a", "b"}, [], tmp_path)
    assert other == ".a{x:1}\n.b{x:2}\n"


def test_bundles_keep_the_rules_of_pages_and_scripts_and_the_cache_only_the_last(tmp_path):
    static, cache = tmp_path / "_static", tmp_path / "cache"
    (static / "styles").mkdir(parents=True)
    (static / "site.css").write_text(".page{}.script{}.bs-tip-auto{}.unused{}")
    scripts = ['add("script");add(`bs-${name}-auto`)']
    bundle = static / bundle_name(["site.css"])
    prune_bundles(static, [("site.css",)], ['<p class="page">'], scripts, cache)
    assert bundle.read_text() == ".page{}\n.script{}\n.bs-tip-auto{}\n"
    prune_bundles(static, [("site.css",)], ['<p class="unused">'], scripts, cache)
    assert bundle.read_text() == ".script{}\n.bs-tip-auto{}\n.unused{}\n"
    assert len(list(cache.iterdir())) == 1


def test_a_stylesheet_that_does_not_parse_is_named(tmp_path):
    (tmp_path / "styles").mkdir()
    (tmp_path / "broken.css").write_text(".a{}\n.b{} }")
    with pytest.raises(CSSError, match=r"^_static/broken\.css, line 2: EOF reached"):
        prune_bundles(tmp_path, [("broken.css",)], ['<p class="a b">'], [], tmp_path / "cache")


def test_stylesheets_become_one_link_where_the_first_was():
    files = ["styles/theme.css", "styles/pydata-sphinx-theme.css", "pygments.css"]
    bundled = bundle_stylesheets(HEAD, files, "_static/styles/bundle-x.css")
    assert bundled.count('rel="stylesheet"') == 2  # the bundle, and the print stylesheet it leaves alone
    assert bundled.startswith(
        '<head>\n<link rel="stylesheet" href="_static/styles/bundle-x.css" '
        'data-bundle-of="styles/theme.css styles/pydata-sphinx-theme.css pygments.css" />\n'
        '  <link rel="stylesheet" href="_static/print.css" media="print" />'
    )
    assert bundle_stylesheets(bundled, files, "_static/styles/bundle-x.css") == bundled


@pytest.mark.parametrize(
    ("css", "source", "rebased"),
    [
        ("a{background:url(img/x.png)}", "", "a{background:url(../img/x.png)}"),
        ('a{background:url("x.png")}', "styles", 'a{background:url("x.png")}'),
        ("@font-face{src:url(../vendor/f.woff2)}", "styles", "@font-face{src:url(../vendor/f.woff2)}"),
        ("a{background:url('data:image/svg+xml;x')}", "", "a{background:url('data:image/svg+xml;x')}"),
        ("a{background:url(https://example.org/x.png)}", "", "a{background:url(https://example.org/x.png)}"),
    ],
    ids=["up", "same-folder", "already-relative", "data", "absolute"],
)
def test_urls_are_rebased_to_the_bundles_folder(css, source, rebased):
    assert rebase_urls(css, source, "styles") == rebased


def test_a_bundle_inlines_imports_in_order(tmp_path):
    (tmp_path / "styles").mkdir()
    (tmp_path / "basic.css").write_text("div{background:url(file.png)}")
    (tmp_path / "styles" / "theme.css").write_text('@import "../basic.css";\n')
    (tmp_path / "reader.css").write_text("p{color:red}\n/*# sourceMappingURL=reader.css.map*/\n")
    bundle = bundle_css(tmp_path, ["styles/theme.css", "reader.css"])
    assert (
        bundle
        == "/* styles/theme.css */\ndiv{background:url(../file.png)}\n\n/* reader.css */\np{color:red}\n"
    )


ICON_CSS = (
    '.fa-magnifying-glass,.fa-search{--fa:"\\f002"}.fa-github{--fa:"\\f09b"}.fa-0{--fa:"\\30 "}'
    '.nav-link:after{content:var(--pst-icon-external-link)}:root{--pst-icon-external-link:"\uf35d"}'
)


def test_the_glyphs_kept_are_those_drawn_and_those_named():
    named, drawn = icon_codepoints(ICON_CSS)
    assert named == {"fa-magnifying-glass": 0xF002, "fa-search": 0xF002, "fa-github": 0xF09B, "fa-0": 0x30}
    assert drawn == {0xF35D}
    assert wanted_codepoints(ICON_CSS, {"fa-search", "fa-unknown"}) == {0xF002, 0xF35D}


def test_the_icon_table_keeps_the_rules_of_the_icons_in_use():
    trimmed = trim_icon_table(ICON_CSS + "/*# sourceMappingURL=x.css.map*/", {"fa-search"})
    assert trimmed.startswith('.fa-magnifying-glass,.fa-search{--fa:"\\f002"}.nav-link:after')
    assert "fa-github" not in trimmed and "sourceMappingURL" not in trimmed


THEME = [str(Path(pydata_sphinx_theme.__file__).parent / "theme" / "pydata_sphinx_theme")]
SOLID_FONT = Path("vendor/fontawesome/webfonts/fa-solid-900.woff2")


def test_a_font_subset_keeps_exactly_the_glyphs_asked_for():
    original = theme_static_file(THEME, SOLID_FONT)
    subset = subset_font(original.read_bytes(), {0xF002, 0xF35D, 0x10FFFF})  # the last is in no font
    cmap = TTFont(io.BytesIO(subset)).getBestCmap()
    assert set(cmap) == {0xF002, 0xF35D}
    assert len(subset) < original.stat().st_size / 10


def test_a_font_subset_is_made_once_per_set_of_glyphs(tmp_path):
    original = theme_static_file(THEME, SOLID_FONT).read_bytes()
    first = cached_subset_font(original, {0xF002}, tmp_path)
    (stored,) = tmp_path.iterdir()
    stored.write_bytes(b"kept")  # what a second call returns if it reads the stored subset
    assert cached_subset_font(original, {0xF002}, tmp_path) == b"kept"
    other = cached_subset_font(original, {0xF002, 0xF35D}, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    assert set(TTFont(io.BytesIO(first)).getBestCmap()) == {0xF002}
    assert set(TTFont(io.BytesIO(other)).getBestCmap()) == {0xF002, 0xF35D}


# -- css_rules ---------------------------------------------------------------------------------------

IN_USE = {"navbar", "show", "main", "theme-dark", "bd-tip"}


@pytest.mark.parametrize(
    ("css", "pruned"),
    [
        (".navbar{a:1}.offcanvas{a:2}", ".navbar{a:1}\n"),
        (".navbar .show,.navbar .collapsing{a:1}", ".navbar .show{a:1}\n"),
        ("div.collapsing>p{a:1}", "\n"),
        ("#main,#gone{a:1}", "#main{a:1}\n"),
        ("p:not(.gone){a:1}", "p:not(.gone){a:1}\n"),
        ("p:has(.gone){a:1}", "p:has(.gone){a:1}\n"),
        ("html[data-theme=dark] p,a:hover{a:1}", "html[data-theme=dark] p,a:hover{a:1}\n"),
        ("@media (min-width:960px){.gone{a:1}.navbar{a:2}}", "@media (min-width:960px){.navbar{a:2}}\n"),
        ("@media print{.gone{a:1}}", "\n"),
        ("@supports (x:y){@media print{.show{a:1}}}", "@supports (x:y){@media print{.show{a:1}}}\n"),
        (
            "@font-face{font-family:f}@keyframes spin{to{a:1}}",
            "@font-face{font-family:f}\n@keyframes spin{to{a:1}}\n",
        ),
        (".bs-tip-auto{a:1}.bs-tip{a:2}", ".bs-tip-auto{a:1}\n"),
        ("/* a comment */ .navbar{color:#fff}", ".navbar{color:#fff}\n"),
    ],
    ids=[
        "unused-class",
        "one-of-two-selectors",
        "no-selector-left",
        "ids",
        "inside-not",
        "inside-has",
        "no-class",
        "media-pruned-inside",
        "media-emptied",
        "nested-grouping",
        "font-face-and-keyframes",
        "built-by-a-script",
        "comment",
    ],
)
def test_rules_are_kept_when_a_page_or_script_can_match_them(css, pruned):
    assert drop_unmatched_rules(css, IN_USE, built_name_patterns("add(`bs-${name}-auto`)")) == pruned


def test_a_rule_that_does_not_parse_stops_the_pruning_with_its_line():
    with pytest.raises(CSSError, match=r"^line 3: EOF reached before \{\} block"):
        drop_unmatched_rules(".navbar{}\n\n.show{} }", IN_USE)


@pytest.mark.parametrize(
    ("script", "names", "not_names"),
    [
        (
            "`bs-${this.constructor.NAME}-auto`",
            ["bs-tooltip-auto", "bs--auto"],
            ["bs-tooltip", "x-bs-tip-auto"],
        ),
        ("`${prefix}-active`", ["tab-active"], ["active"]),
        ("`${a}${b}`", [], ["anything"]),
        ("`no placeholder`", [], ["no"]),
    ],
    ids=["placeholder-inside", "placeholder-first", "only-placeholders", "plain-literal"],
)
def test_names_a_script_builds_fit_its_template_literals(script, names, not_names):
    patterns = built_name_patterns(script)
    for name in names:
        assert any(pattern.fullmatch(name) for pattern in patterns), name
    for name in not_names:
        assert not any(pattern.fullmatch(name) for pattern in patterns), name


def test_words_and_selector_names():
    assert words('<p class="bd-tip theme-dark" id="main">x = 1</p>') >= {"bd-tip", "theme-dark", "main", "x"}
    (selector,) = [rule.prelude for rule in tinycss2.parse_stylesheet(".a.b > #c:not(.d) e{}")]
    assert selector_names(selector) == ["a", "b", "c"]


# -- reader_notebooks ---------------------------------------------------------------------------------

REQUIREMENTS = """# the stack
jax==0.10.2
jaxlib==0.10.2  # must equal jax's
Orbax_Checkpoint==0.12.8
sphinx>=9
"""


def test_pins_are_read_from_requirements():
    assert pins(REQUIREMENTS) == {"jax": "0.10.2", "jaxlib": "0.10.2", "orbax-checkpoint": "0.12.8"}


def test_the_install_line_pins_each_package():
    line = install_line(REQUIREMENTS, ["jax", "orbax-checkpoint"])
    assert line == "%pip install --quiet jax==0.10.2 orbax-checkpoint==0.12.8"
    with pytest.raises(ConfigError, match=r"not pinned with == in requirements.txt: \['sphinx', 'torch'\]"):
        install_line(REQUIREMENTS, ["jax", "sphinx", "torch"])


def test_the_readers_notebook_starts_with_the_install_cell():
    executed = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("1")]
    )
    executed.cells[1].outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)
    ]
    notebook = reader_notebook(executed, "%pip install --quiet jax==0.10.2")
    assert [cell.source for cell in notebook.cells] == ["%pip install --quiet jax==0.10.2", "# T", "1"]
    assert notebook.cells[2].outputs == executed.cells[1].outputs
    assert len(executed.cells) == 2  # the executed notebook is left as it was
    nbformat.validate(notebook)


def test_the_readers_notebook_warns_before_each_expected_error():
    cells = [
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_code_cell("2"),
        nbformat.v4.new_code_cell("[][0]"),
    ]
    cells[0].metadata["tags"] = ["raises-exception", "raises:ZeroDivisionError"]
    cells[2].metadata["tags"] = ["raises-exception"]
    notebook = reader_notebook(nbformat.v4.new_notebook(cells=cells), "%pip install --quiet jax==0.10.2")
    kinds = [(cell.cell_type, cell.metadata.get("tags", [""])[0]) for cell in notebook.cells]
    assert kinds == [
        ("code", "install-pinned-stack"),
        ("markdown", "expected-error-note"),
        ("code", "raises-exception"),
        ("code", ""),
        ("markdown", "expected-error-note"),
        ("code", "raises-exception"),
    ]
    assert "Run after" in notebook.cells[1].source
    nbformat.validate(notebook)


def test_the_colab_link_opens_the_published_notebook():
    assert colab_url("o/r", "notebooks", "jax-state") == (
        "https://colab.research.google.com/github/o/r/blob/notebooks/jax-state.ipynb"
    )


# -- execution_footer ---------------------------------------------------------------------------------


def test_the_footer_names_the_day_and_the_versions():
    text = footer_text(1767139200.0, {"jax": "0.10.2", "torch": "2.13.0"}, "3.11.7")  # 2025-12-31 00:00 UTC
    assert text == "Outputs produced on 2025-12-31 (UTC) with Python 3.11.7, jax 0.10.2, torch 2.13.0."


# -- stream_outputs ---------------------------------------------------------------------------------


def join(run: list[str]) -> str:
    return "+".join(run)


@pytest.mark.parametrize(
    ("items", "merged"),
    [
        ([], []),
        (["a1"], ["a1"]),
        (["a1", "a2", "a3"], ["a1+a2+a3"]),
        (["a1", "b1", "a2"], ["a1", "b1", "a2"]),  # only neighbours: the order of the output is kept
        (["a1", "a2", "x", "a3", "b1", "b2"], ["a1+a2", "x", "a3", "b1+b2"]),
        (["x", "x"], ["x", "x"]),  # key None: never merged
    ],
)
def test_runs_of_neighbours_that_share_a_key_are_merged(items, merged):
    assert merge_runs(items, lambda item: None if item == "x" else item[0], join) == merged


def stream_block(text: str, kind: str = "stream") -> nodes.literal_block:
    return nodes.literal_block(text, text, classes=["output", kind], language="myst-ansi")


def test_stdout_chunks_of_a_cell_become_one_block_and_other_outputs_stay():
    image = nodes.image(uri="plot.png")
    output = nodes.container(classes=["cell_output"])
    output.extend(
        [stream_block("step 1\n"), stream_block("step 2\n"), stream_block("oops\n", "stderr"), image]
    )
    document = nodes.document(None, None)
    document += output
    merge_cell_streams(None, document)
    assert [stream_key(child) for child in output.children] == [
        ("output", "stream"),
        ("output", "stderr"),
        None,
    ]
    assert output.children[0].astext() == "step 1\nstep 2\n"
    assert output.children[0]["language"] == "myst-ansi"
    assert output.children[2] is image


def test_a_joined_block_keeps_the_text_exactly_as_printed():
    block = joined_block([stream_block("no newline, "), stream_block("then the rest\n")])
    assert block.astext() == block.rawsource == "no newline, then the rest\n"


# -- hidden_cells -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rewritten"),
    [
        (
            '<details class="admonition hide above-input">\n<summary aria-label="Toggle hidden content">\n'
            '<p class="collapsed admonition-title">Show the solution</p>',
            '<details class="admonition hide above-input">\n<summary>\n'
            '<p class="collapsed admonition-title">Show the solution</p>',
        ),
        (
            '<summary aria-label="Open the menu">Menu</summary>',
            '<summary aria-label="Open the menu">Menu</summary>',
        ),
        ("<p>no toggle</p>", "<p>no toggle</p>"),
    ],
    ids=["myst-nb-toggle", "another-label-kept", "nothing-to-do"],
)
def test_a_hidden_cells_toggle_loses_its_generic_label(body, rewritten):
    assert name_toggles_by_prompt(body) == rewritten


@pytest.mark.parametrize(
    ("body", "rewritten"),
    [
        (
            '<summary>\n<p class="collapsed admonition-title">Show the solution</p>\n'
            '<p class="expanded admonition-title">Hide the solution</p>\n</summary>',
            '<summary>\n<span class="collapsed admonition-title">Show the solution</span>\n'
            '<span class="expanded admonition-title">Hide the solution</span>\n</summary>',
        ),
        (
            '<p class="collapsed admonition-title">Show &lt;code&gt; &amp; more</p>',
            '<span class="collapsed admonition-title">Show &lt;code&gt; &amp; more</span>',
        ),
        ('<p class="admonition-title">Exercise</p>', '<p class="admonition-title">Exercise</p>'),
        ("<p>no toggle</p>", "<p>no toggle</p>"),
    ],
    ids=["myst-nb-prompts", "escaped-prompt", "admonition-title-kept", "nothing-to-do"],
)
def test_a_hidden_cells_prompts_are_phrasing_content(body, rewritten):
    assert prompts_as_phrasing(body) == rewritten


# -- execution_table ---------------------------------------------------------------------------------


def status_table(*statuses: nodes.Node) -> nodes.table:
    """A table as MyST-NB's make_stat_table builds it: a row per page, its status last."""
    body = nodes.tbody()
    for number, status in enumerate(statuses):
        body += nodes.row(
            "",
            nodes.entry("", nodes.paragraph(text=f"page-{number}")),
            nodes.entry("", nodes.paragraph("", "", status)),
        )
    return nodes.table("", nodes.tgroup("", body))


@pytest.mark.parametrize(
    ("statuses", "words"),
    [
        ([nodes.Text("✅")], ["ok"]),
        ([nodes.abbreviation("", "", nodes.Text("❌"), explanation="ValueError")], ["failed"]),
        ([nodes.Text("✅"), nodes.Text("✅")], ["ok", "ok"]),
        ([nodes.Text("ok")], ["ok"]),
    ],
    ids=["succeeded", "failed", "two-pages", "already-words"],
)
def test_the_execution_table_marks_each_run_in_words(statuses, words):
    table = marks_in_words(status_table(*statuses))
    assert [row[-1].astext() for row in table.findall(nodes.row)] == words
    assert [row[0].astext() for row in table.findall(nodes.row)] == [f"page-{n}" for n in range(len(words))]
    for abbreviation in table.findall(nodes.abbreviation):
        assert abbreviation["explanation"] == "ValueError", "a failure keeps its error as the title"


# -- own_stylesheet ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("static_paths", "missing"),
    [
        (["docs/_static"], False),  # this site's conf.py
        (["_static"], True),  # a folder of the same name elsewhere
        (["docs/../docs/_static"], False),  # the same folder, spelled another way
        ([], True),  # a throwaway project's conf.py
    ],
)
def test_an_extensions_stylesheet_folder_is_added_only_where_missing(tmp_path, static_paths, missing):
    (tmp_path / "docs" / "_static").mkdir(parents=True)
    assert folder_is_missing(tmp_path, static_paths, tmp_path / "docs" / "_static") is missing
