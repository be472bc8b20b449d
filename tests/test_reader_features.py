"""What readers get around the content, in the clean build: descriptions, links to the repository, the
downloads and the Colab notebook, the execution footer, the status page, the figures and the icons."""

import io
import itertools
import re
import runpy
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import DOCS, FRONT_MATTER, PAGES, ROOT, sphinx_build
from fontTools.ttLib import TTFont
from jupyter_cache import get_cache
from light_assets import ICON_NAME, icon_codepoints
from reader_notebooks import install_cell, page_packages
from strict_execution import ANSI_ESCAPE

CONF = runpy.run_path(str(ROOT / "conf.py"))
REPOSITORY_URL = f"https://github.com/{CONF['REPOSITORY']}"
COLAB = "https://colab.research.google.com"


def test_every_page_has_its_own_description(site):
    descriptions = {}
    for docname in [*PAGES, "search"]:
        meta = site.soup(docname).select('head meta[name="description"]')
        assert len(meta) == 1, docname
        descriptions[docname] = meta[0]["content"].strip()
        assert len(descriptions[docname]) >= 50, docname
    assert len(set(descriptions.values())) == len(descriptions), descriptions


@pytest.mark.parametrize("docname", PAGES)
def test_edit_issue_and_repository_links(site, docname):
    links = {a["href"] for a in site.soup(docname).select(".article-header-buttons a[href]")}
    assert f"{REPOSITORY_URL}/edit/{CONF['BRANCH']}/docs/{docname}.md" in links
    assert any(link.startswith(f"{REPOSITORY_URL}/issues/new?") for link in links)
    assert REPOSITORY_URL in links


@pytest.mark.parametrize("github_repository", [None, "a-fork/model-state"], ids=["local", "github-actions"])
def test_the_links_to_github_name_the_repository_the_site_is_built_from(
    make_project, monkeypatch, github_repository
):
    """In GitHub Actions (GITHUB_REPOSITORY set: a fork, or the project after a move), the edit, issue,
    source and Colab links name the repository the workflow runs in; elsewhere, conf.py's constant."""
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    constant = runpy.run_path(str(ROOT / "conf.py"))["REPOSITORY"]
    if github_repository:
        monkeypatch.setenv("GITHUB_REPOSITORY", github_repository)  # the build's subprocess inherits it
    repository = github_repository or constant
    project = make_project({"index.md": f"{FRONT_MATTER}(home)=\n# Home\n\nA page of text.\n"})
    build = sphinx_build(project, project / "docs", project / "_build" / "html")
    assert build.returncode == 0, build.log
    url = f"https://github.com/{repository}"
    links = {a["href"] for a in build.soup("index").select(".article-header-buttons a[href]")}
    assert f"{url}/edit/{CONF['BRANCH']}/docs/index.md" in links
    assert any(link.startswith(f"{url}/issues/new?") for link in links)
    assert url in links
    assert f"{COLAB}/github/{repository}/blob/{CONF['NOTEBOOKS_BRANCH']}/index.ipynb" in links
    if github_repository:
        assert constant not in build.page("index"), "no link is left on the constant"


def test_previous_and_next_links_follow_the_navigation_within_the_guide(site):
    order = [a["href"].removesuffix(".html") for a in site.soup("index").select("nav.bd-docs-nav a")]
    contributing = order[order.index("page-template") :]
    lessons = order[: order.index("page-template")]
    assert contributing == ["page-template", "status"] and len(lessons) >= 10
    for sequence in [["index", *lessons], contributing]:
        for before, after in itertools.pairwise(sequence):
            assert site.soup(before).select_one("a.right-next")["href"] == f"{after}.html"
            assert site.soup(after).select_one("a.left-prev")["href"] == f"{before}.html"
    assert site.soup(lessons[-1]).select_one("a.right-next") is None, "the last lesson leads nowhere else"
    assert site.soup("page-template").select_one("a.left-prev") is None


def test_the_landing_page_starts_the_reader_and_lists_each_lesson_once(site):
    soup = site.soup("index")
    start = soup.select_one("article a.start-here")
    assert start["href"] == "jax-state.html" and "Start here" in start.get_text()
    cards = soup.select("article .sd-card")
    assert len(cards) == 5
    linked = [a["href"].removesuffix(".html") for card in cards for a in card.select("a.reference")]
    nav = [a["href"].removesuffix(".html") for a in soup.select("nav.bd-docs-nav a")]
    assert linked == nav[: nav.index("page-template")], "the cards list the lessons in the sidebar's order"
    assert not soup.select("article div.toctree-wrapper a"), (
        "the toctrees are the sidebar's, not listed again"
    )
    assert not soup.select("article ol"), "no second list of the lessons"


@pytest.mark.parametrize("docname", PAGES)
def test_the_page_downloads_as_markdown_and_as_a_notebook(site, docname):
    downloads = {a["href"] for a in site.soup(docname).select(".dropdown-download-buttons a[href]")}
    assert {f"_sources/{docname}.md", f"_sources/{docname}.ipynb"} <= downloads
    source = (site.html / "_sources" / f"{docname}.md").read_text(encoding="utf8")
    assert source == (DOCS / f"{docname}.md").read_text(encoding="utf8")
    notebook = nbformat.read(site.html / "_sources" / f"{docname}.ipynb", as_version=4)
    nbformat.validate(notebook)
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf8")
    packages = [*CONF["reader_notebooks_packages"], *page_packages(site.notebook(docname).metadata)]
    assert notebook.cells[0].source == install_cell(requirements, packages)
    # The rest is the page as it ran: its cells, in order, with their outputs (and the notes before the
    # expected errors).
    executed = site.notebook(docname)
    page_cells = [c for c in notebook.cells[1:] if c.metadata.get("tags") != ["expected-error-note"]]
    assert [(c.cell_type, c.source) for c in page_cells] == [(c.cell_type, c.source) for c in executed.cells]
    assert [c.get("outputs") for c in page_cells] == [c.get("outputs") for c in executed.cells]


@pytest.mark.parametrize("docname", PAGES)
def test_the_notebook_holds_what_each_cell_printed_once(site, docname):
    """Each cell's stdout chunks, joined, are exactly one stdout block of the page (no repeated lines)."""
    blocks = site.soup(docname).select("div.cell_output div.output.stream")
    shown = {block.get_text().strip() for block in blocks}
    for cell in site.notebook(docname).cells:
        chunks = [out.text for out in cell.get("outputs", []) if out.get("name") == "stdout"]
        if chunks and not {"remove-output", "remove-cell"} & set(cell.metadata.get("tags", [])):
            assert ANSI_ESCAPE.sub("", "".join(chunks)).strip() in shown, (docname, cell.source)


def test_a_page_taken_from_the_cache_still_downloads_with_its_outputs(make_project):
    page = f'{FRONT_MATTER}(home)=\n# Home\n\n```{{code-cell}} ipython3\nprint("from the kernel")\n```\n'
    project = make_project({"index.md": page})
    downloads = []
    for fresh_read in [[], ["-E"]]:  # executed; then read again, from the execution cache
        build = sphinx_build(project, project / "docs", project / "_build" / "html", *fresh_read)
        assert build.returncode == 0, build.log
        notebook = nbformat.read(build.html / "_sources" / "index.ipynb", as_version=4)
        downloads.append([output.get("text") for output in notebook.cells[-1].outputs])
    assert "Executed notebook" not in build.log, "the second build ran nothing"
    assert downloads == [["from the kernel\n"]] * 2


def published_notebooks() -> tuple[str, str]:
    """(folder of the site that the deploy workflow publishes, branch it publishes to), from the workflow."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf8"))
    upload = next(
        step for step in workflow["jobs"]["build"]["steps"] if step.get("with", {}).get("name") == "notebooks"
    )
    pattern = upload["with"]["path"]
    assert pattern.endswith("/**/*.ipynb"), pattern
    job = workflow["jobs"]["notebooks"]
    assert job["permissions"] == {"contents": "write"}
    assert "HEAD:refs/heads/$NOTEBOOKS_BRANCH" in job["steps"][-1]["run"]
    return pattern.removesuffix("/**/*.ipynb").removeprefix("_build/html/"), job["env"]["NOTEBOOKS_BRANCH"]


@pytest.mark.parametrize("docname", PAGES)
def test_open_in_colab_opens_the_notebook_the_workflow_publishes(site, docname):
    folder, branch = published_notebooks()
    assert branch == CONF["NOTEBOOKS_BRANCH"]
    # The artifact keeps paths under the folder, and the branch holds the artifact at its root.
    assert (site.html / folder / f"{docname}.ipynb").is_file()
    colab = [a["href"] for a in site.soup(docname).select("a[href^='https://colab.research.google.com/']")]
    assert colab == [
        f"https://colab.research.google.com/github/{CONF['REPOSITORY']}/blob/{branch}/{docname}.ipynb"
    ]


FOOTER = re.compile(r"Outputs produced on (\d{4}-\d\d-\d\d) \(UTC\) with Python ([\d.]+), (.+)\.")


@pytest.mark.parametrize("docname", PAGES)
def test_the_footer_says_when_and_with_what_the_outputs_were_produced(site, docname):
    footer = site.soup(docname).select_one("footer .execution-footer")
    found = FOOTER.fullmatch(footer.get_text(strip=True))
    assert found, footer
    runs = {
        Path(record.uri).stem: record.created
        for record in get_cache(site.html.parent / "cache").list_cache_records()
    }
    assert found[1] == runs[docname].strftime("%Y-%m-%d")  # jupyter-cache records the run in UTC
    stack = dict(part.split(" ") for part in found[3].split(", "))
    assert stack == {name: version(name) for name in CONF["execution_footer_packages"]}


def test_the_status_page_lists_every_page_versions_and_machine(site):
    page = site.soup("status")
    rows = [
        [cell.get_text(strip=True) for cell in row.select("td")]
        for row in page.select_one("article table").select("tbody tr")  # the execution table comes first
    ]
    assert sorted(row[0] for row in rows) == PAGES
    for name, modified, method, runtime, status in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", modified) and method == "cache", name
        assert float(runtime) > 0 and status == "ok", name
    outputs = page.select_one("article").get_text()
    for package in ["jax", "flax", "optax", "torch", "sphinx", "myst-nb"]:
        assert re.search(rf"^{package}\s+{re.escape(version(package))}$", outputs, re.MULTILINE), package
    for field in ["python", "system", "processor", "cores", "memory"]:
        assert re.search(rf"^{field}\s+\S", outputs, re.MULTILINE), field


@pytest.mark.parametrize("docname", PAGES)
def test_every_figure_has_alt_text_and_an_opaque_background(site, docname):
    for image in site.soup(docname).select("article img"):
        alt = image.get("alt", "").strip()
        assert len(alt) >= 20 and "/" not in alt and not alt.endswith(".png"), (docname, image)
        if image.find_parent(class_="cell_output"):
            # A plot is SVG (its text stays text), drawn on the figure's own opaque white background, its
            # first shape, so that it reads on the dark theme too.
            assert image["src"].endswith(".svg"), (docname, image["src"])
            svg = (site.html / image["src"]).read_text(encoding="utf8")
            first_shape = re.search(r"<path [^>]*style=\"([^\"]*)\"", svg)[1]
            assert "fill: #ffffff" in first_shape and "opacity" not in first_shape, (docname, image["src"])


def test_the_fonts_hold_every_icon_the_site_shows(site):
    static = site.html / "_static"
    fonts = {
        font.name: set(TTFont(io.BytesIO(font.read_bytes())).getBestCmap())
        for font in static.glob("**/*.woff2")
    }
    assert set(fonts) == {"fa-solid-900.woff2", "fa-regular-400.woff2", "fa-brands-400.woff2"}
    assert all(path.stat().st_size < 8192 for path in static.glob("**/*.woff2"))
    named, drawn = icon_codepoints((static / "styles" / "pydata-sphinx-theme.css").read_text(encoding="utf8"))
    shown = {
        name
        for html in site.html.glob("*.html")
        for name in ICON_NAME.findall(html.read_text(encoding="utf8"))
    }
    kept = set().union(*fonts.values())
    missing = {name for name in shown if name in named and named[name] not in kept}
    assert not missing
    assert {"fa-github", "fa-download", "fa-magnifying-glass", "fa-sun", "fa-moon"} <= shown
    assert drawn <= kept  # the theme's own icons: admonitions, external links, breadcrumbs
    book_theme = (static / "styles" / "sphinx-book-theme.css").read_text(encoding="utf8")
    _, book_drawn = icon_codepoints(book_theme)
    assert 0xF107 in book_drawn and book_drawn <= kept  # the caret of the folded contents, and the rest


@pytest.mark.parametrize("docname", [*PAGES, "search"])
def test_pages_load_no_font_awesome_script_and_one_stylesheet(site, docname):
    head = site.soup(docname).select_one("head")
    scripts = [script.get("src", "") for script in head.select("script[src]")]
    assert not any("fontawesome" in src for src in scripts)
    assert any("searchindex" in src for src in scripts) == (docname == "search")
    stylesheets = head.select('link[rel="stylesheet"]')
    assert len(stylesheets) == 1 and (site.html / stylesheets[0]["href"]).is_file()
    assert not (site.html / "_static" / "scripts" / "fontawesome.js").exists()


# Characters that a system font draws only with a colour-emoji font (elsewhere an empty box, or nothing):
# those with Unicode's Emoji_Presentation property (emoji-data.txt), the blocks of pictographs from U+1F000
# whole, and the selector that asks for a character's emoji form (U+FE0F, as in "⚠️"). Symbols whose text
# form is the default (☰, ✓, ⚠ alone) are left: text fonts have them.
EMOJI = re.compile(
    "[\U0001f000-\U0001faff"
    "\u231a\u231b\u23e9-\u23ec\u23f0\u23f3\u25fd\u25fe\u2614\u2615\u2648-\u2653\u267f\u2693\u26a1"
    "\u26aa\u26ab\u26bd\u26be\u26c4\u26c5\u26ce\u26d4\u26ea\u26f2\u26f3\u26f5\u26fa\u26fd\u2705"
    "\u270a\u270b\u2728\u274c\u274e\u2753-\u2755\u2757\u2795-\u2797\u27b0\u27bf\u2b1b\u2b1c\u2b50"
    "\u2b55\ufe0f]"
)


def test_no_page_needs_a_colour_emoji_font(site):
    found = {
        page.relative_to(site.html).as_posix(): sorted(set(EMOJI.findall(page.read_text(encoding="utf8"))))
        for page in site.html.glob("**/*.html")
    }
    assert "✅" in "".join(EMOJI.findall("Status ✅ ⚠️")) and not EMOJI.findall("☰ ✓ ⚠")  # the class itself
    assert {page: marks for page, marks in found.items() if marks} == {}
