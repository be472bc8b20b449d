"""The built site in a real browser, as readers get it: Chromium (Playwright) on the site served with gzip.

Every page: no console error and no failed request, no horizontal scrolling on a 375 px wide phone, no
serious or critical axe-core violation in the light and the dark theme, and code and outputs that meet
WCAG AA contrast in the dark theme; a first visit under its weight budget. Across the site: search,
the framework tabs, the dark-mode toggle and the copy button; and every HTML file is valid HTML (the Nu
HTML Checker).

Needs a Chromium (tests/chromium.py finds one) and the npm packages (axe-core, vnu-jar), which
``nox -s tests`` provides; the HTML checker runs on the machine's Java (11 or later), which `.ci/run`
installs where there is none.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
from bs4 import BeautifulSoup
from chromium import CHROMIUM, CHROMIUM_ARGS
from conftest import PAGES, ROOT
from playwright.sync_api import sync_playwright

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
# What a first visit may transfer; a page with a plot or an interactive tree carries its image or script.
BUDGET, HEAVY_BUDGET = 250 * 1024, 500 * 1024


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set CHROMIUM to a Chrome")
    if not AXE.is_file():
        pytest.fail(f"no {AXE.relative_to(ROOT)}: run `npm ci` at the repository's root")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_page(browser, viewport=PHONE, mode=None, **options):
    """A page in a fresh context (empty cache and storage); ``mode`` is the stored theme choice."""
    context = browser.new_context(viewport=viewport, **options)
    if mode:
        context.add_init_script(f"localStorage.setItem('mode', '{mode}')")
    return context.new_page()


def visit(browser, url, **options):
    """Load a page; returns it and the problems seen: console errors, uncaught errors, failed requests."""
    page = new_page(browser, **options)
    problems = []
    page.on(
        "console", lambda message: message.type == "error" and problems.append(f"console: {message.text}")
    )
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on(
        "response",
        lambda response: response.status >= 400 and problems.append(f"{response.status}: {response.url}"),
    )
    page.goto(url, wait_until="networkidle")
    return page, problems


def axe_violations(page) -> list[str]:
    """The serious and critical axe-core violations of the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .filter((violation) => ["serious", "critical"].includes(violation.impact))
            .map((violation) => `${violation.id} (${violation.nodes.length}): `
                 + violation.nodes.slice(0, 3).map((node) => node.target.join(" ")).join(" | "))"""
    )
    return found


# The WCAG contrast of each piece of text in code blocks and cell outputs against what is behind it.
CONTRAST = """() => {
  const rgba = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  const over = (top, bottom) => {
    const alpha = top.length > 3 ? top[3] : 1;
    return [0, 1, 2].map((i) => top[i] * alpha + bottom[i] * (1 - alpha));
  };
  const background = (element) => {
    const layers = [];
    for (let node = element; node; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour.length && (colour.length < 4 || colour[3] > 0)) layers.push(colour);
      if (colour.length && (colour.length < 4 || colour[3] === 1)) break;
    }
    return layers.reduceRight((below, layer) => over(layer, below), [255, 255, 255]);
  };
  const failures = [];
  const seen = new Set();
  const blocks = document.querySelectorAll("article div.highlight pre, article .cell_output");
  for (const block of blocks) {
    const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
      const element = text.parentElement;
      if (!text.textContent.trim() || seen.has(element) || !element.getClientRects().length) continue;
      seen.add(element);
      const style = getComputedStyle(element);
      const back = background(element);
      const fore = over(rgba(style.color), back);
      const [light, dark] = [luminance(fore), luminance(back)].sort((a, b) => b - a);
      const ratio = (light + 0.05) / (dark + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        failures.push(`${ratio.toFixed(2)} for ${JSON.stringify(text.textContent.trim().slice(0, 30))}`
                      + ` (${style.color} on rgb(${back.map(Math.round)}))`);
      }
    }
  }
  return {checked: seen.size, failures: failures.slice(0, 10)};
}"""


def test_every_html_file_of_the_site_is_valid_html(site):
    """The Nu HTML Checker finds no error in any HTML file of the built site, with nothing filtered out:
    every page, and any other file that ends in .html (a theme's unrendered Jinja template, which
    light_assets deletes, would be one, with errors). Its warnings and notes are not errors: not counted."""
    java = shutil.which("java")
    if java is None:
        pytest.fail("no Java for the Nu HTML Checker: apt-get install default-jre-headless (or any Java 11+)")
    if not VNU.is_file():
        pytest.fail(f"no {VNU.relative_to(ROOT)}: run `npm ci` at the repository's root")
    files = sorted(site.html.glob("**/*.html"))
    checked = {path.relative_to(site.html).as_posix() for path in files}
    assert {f"{docname}.html" for docname in [*PAGES, "search"]} <= checked
    command = [java, "-jar", str(VNU), "--format", "json", *map(str, files)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        messages = json.loads(done.stderr)["messages"]  # vnu.jar writes its report to stderr
    except ValueError:
        pytest.fail(f"vnu.jar did not report (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    errors = [
        f"{os.path.relpath(unquote(message.get('url', '').removeprefix('file:')), site.html)}:"
        f"{message.get('lastLine', '?')}: {message['message']}"
        for message in messages
        if message["type"] in {"error", "non-document-error"}
    ]
    assert not errors, f"{len(errors)} errors, the first: " + "\n".join(errors[:20])


@pytest.mark.parametrize("docname", [*PAGES, "search"])
def test_page_loads_without_errors_or_failed_requests(browser, served_site, docname):
    page, problems = visit(browser, served_site + f"{docname}.html")
    page.context.close()
    assert problems == []


@pytest.mark.parametrize("docname", PAGES)
def test_no_horizontal_scrolling_on_a_phone(browser, served_site, docname):
    page, _ = visit(browser, served_site + f"{docname}.html")
    width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    page.context.close()
    assert viewport == PHONE["width"] and width <= viewport


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("docname", [*PAGES, "search"])
def test_no_serious_accessibility_violation(browser, served_site, docname, mode):
    page, _ = visit(browser, served_site + f"{docname}.html", mode=mode)
    assert page.evaluate("document.documentElement.dataset.theme") == mode
    violations = axe_violations(page)
    page.context.close()
    assert violations == []


@pytest.mark.parametrize("docname", PAGES)
def test_code_and_outputs_meet_aa_contrast_in_dark_mode(browser, served_site, site, docname):
    page, _ = visit(browser, served_site + f"{docname}.html", mode="dark")
    result = page.evaluate(CONTRAST)
    page.context.close()
    assert result["failures"] == []
    has_code = BeautifulSoup(site.page(docname), "html.parser").select("article div.highlight pre")
    assert result["checked"] > 0 or not has_code  # the check saw the page's code


@pytest.mark.parametrize("docname", [*PAGES, "search"])
def test_a_first_visit_is_light(browser, served_site, site, docname):
    page = new_page(browser)
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto(served_site + f"{docname}.html", wait_until="networkidle")
    sizes = [response.request.sizes() for response in responses]
    page.context.close()
    transferred = sum(size["responseBodySize"] + size["responseHeadersSize"] for size in sizes)
    outputs = BeautifulSoup(site.page(docname), "html.parser").select(".cell_output")
    heavy = any(output.select("img, script") for output in outputs)
    assert transferred < (HEAVY_BUDGET if heavy else BUDGET), f"{transferred / 1024:.0f} KiB"


def test_search_lists_the_jax_state_page_first(browser, served_site):
    page, problems = visit(browser, served_site + "search.html?q=Counter")
    page.wait_for_selector("#search-results ul.search li a", timeout=15_000)
    first = page.locator("#search-results ul.search li a").first.get_attribute("href")
    page.context.close()
    assert first.split("?")[0].split("#")[0] == "jax-state.html"
    assert problems == []


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375px", "1280px"])
def test_the_search_fields_magnifier_leaves_the_query_uncovered(browser, served_site, viewport):
    """The search page's field and the Ctrl+K dialog's: the magnifier ends before the input's text starts
    (the <i> the theme places absolutely, for a script light_assets drops: see docs/_static/reader.css)."""
    measure = """(form) => {
      const icon = form.querySelector(".fa-magnifying-glass").getBoundingClientRect();
      const input = form.querySelector("input");
      const style = getComputedStyle(input);
      const text = input.getBoundingClientRect().left + parseFloat(style.borderLeftWidth)
                   + parseFloat(style.paddingLeft);
      return {icon: [icon.left, icon.right], text, value: input.value};
    }"""
    page, problems = visit(browser, served_site + "search.html", viewport=viewport)
    field = page.locator(".bd-search-container form.bd-search")
    field.locator("input").fill("batch_stats")
    on_the_page = field.evaluate(measure)
    page.goto(served_site + "jax-state.html", wait_until="networkidle")
    page.keyboard.press("Control+k")
    dialog = page.locator("#pst-search-dialog form.bd-search")
    dialog.wait_for(state="visible")
    dialog.locator("input").fill("batch_stats")
    in_the_dialog = dialog.evaluate(measure)
    page.context.close()
    for found in [on_the_page, in_the_dialog]:
        left, right = found["icon"]
        assert found["value"] == "batch_stats" and right > left, found
        assert right <= found["text"], f"the icon covers the query's first letter: {found}"
    assert problems == []


# A search result's section in its page: the prose (paragraphs and list items, not in a code cell or an
# output) that holds a term, and the text of the page's code cells and outputs.
SECTION_PROSE = """([hash, term]) => {
  const section = document.getElementById(decodeURIComponent(hash.slice(1)))?.closest("section");
  const prose = [...(section ? section.querySelectorAll("p, li") : [])]
    .filter((block) => !block.closest(".cell, div.highlight, pre, .expected-error"))
    .map((block) => block.textContent.replace(/\\s+/g, " ").trim())
    .filter((text) => text.toLowerCase().includes(term.toLowerCase()));
  const code = [...document.querySelectorAll("article .cell, article div.highlight")]
    .map((block) => block.textContent.replace(/\\s+/g, " "));
  return {prose, code};
}"""


@pytest.mark.parametrize("term", ["batch_stats", "donate"])
def test_a_search_result_leads_to_the_section_that_teaches_the_term(browser, served_site, term):
    """docs/_static/search-sections.js: the first result links to the section whose prose holds the term
    first, and its snippet is that prose, not code."""
    page, problems = visit(browser, served_site + f"search.html?q={term}")
    first = page.locator("#search-results ul.search li").first
    first.locator("p.context").wait_for(timeout=15_000)
    href = first.locator("a").get_attribute("href")
    snippet = first.locator("p.context").inner_text().strip()
    assert "#" in href, f"the result leads to the page, not a section: {href}"
    page.goto(served_site + href, wait_until="networkidle")
    found = page.evaluate(SECTION_PROSE, [href[href.index("#") :], term])
    page.context.close()
    assert found["prose"], f"no paragraph of {href} holds {term!r}"
    assert term.lower() in snippet.lower()
    core = snippet.removeprefix("...").removesuffix("...")
    assert any(core in text for text in found["prose"]), f"the snippet is not the section's prose: {snippet}"
    assert not any(core in text for text in found["code"])
    assert problems == []


# A page as search-sections.js gets it: its terms in an admonition, code, an output, and paragraphs.
SECTIONS_PAGE = """<main role="main"><article>
<section id="page"><h1>Page<a class="headerlink" href="#page">#</a></h1>
  <div class="admonition tip"><ul class="simple"><li>what the batch_stats are, in a list</li></ul></div>
  <div class="cell"><div class="cell_input highlight"><pre>batch_stats = {}</pre></div></div>
  <section id="taught"><h2>Where it is taught<a class="headerlink" href="#taught">#</a></h2>
    <div class="cell"><div class="cell_output"><pre>{'batch_stats': 1}</pre></div></div>
    <p>The <code>batch_stats</code> collection
       holds running averages.</p>
  </section>
  <section id="both"><h2>Both terms</h2><ul><li><p>A donated state, and its batch_stats.</p></li></ul>
  </section>
  <section id="code"><h2>Code only</h2><div class="highlight"><pre>jnp.flatnonzero(x)</pre></div></section>
</section></article></main>"""
TAUGHT = "The batch_stats collection holds running averages."
SEARCH_SCRIPTS = ["searchtools.js", "search-sections.js", "language_data.js", "searchindex.js"]


def test_search_sections_finds_the_prose_that_holds_the_terms(browser, served_site):
    """The pure logic of docs/_static/search-sections.js, and its place among the search page's scripts."""
    page, problems = visit(browser, served_site + "search.html")
    scripts = page.evaluate("[...document.scripts].filter((s) => s.src).map((s) => [s.src, s.defer])")
    names = [src.split("/")[-1].split("?")[0] for src, _ in scripts]
    start = names.index("searchtools.js")
    assert names[start : start + 4] == SEARCH_SCRIPTS, "it runs after the script it changes, all deferred"
    assert all(deferred for _, deferred in scripts[start : start + 4])
    find = """([html, keywords, anchor]) => SearchSections.find(
      new DOMParser().parseFromString(html, "text/html"), new Set(keywords), anchor)"""
    both = {"anchor": "#both", "heading": "Both terms", "text": "A donated state, and its batch_stats."}
    cases = [  # keywords (stemmed, as Sphinx gives them), the section asked for, what is found
        (["batch_stat"], "", {"anchor": "#taught", "heading": "Where it is taught", "text": TAUGHT}),
        (["batch_stat", "donat"], "", both),  # more of the terms first
        (["what"], "", {"anchor": "#page", "heading": None, "text": "what the batch_stats are, in a list"}),
        (["batch_stat"], "#both", both),  # a result for a section stays in it
        (["flatnonzero"], "", None),  # only in code: the result keeps Sphinx's link and snippet
    ]
    for keywords, anchor, expected in cases:
        assert page.evaluate(find, [SECTIONS_PAGE, keywords, anchor]) == expected, keywords
    text = " ".join(f"word{index}" for index in range(60)) + " the donated state " + "tail " * 60
    snippet = page.evaluate("([text]) => SearchSections.snippet(text, new Set(['donat']))", [text])
    assert "donated state" in snippet and len(snippet) <= 246, snippet
    assert snippet.startswith("...") and snippet[3:].split(" ")[0] in text.split(), "from a whole word"
    assert snippet.endswith("tail..."), "to a whole word"
    assert page.evaluate("SearchSections.snippet('A short one.', new Set(['short']))") == "A short one."
    # The summary that Sphinx asks for: from the prose, and the result's link then leads to its section;
    # where the terms are only in code, Sphinx's own summary, and the link as it was.
    summary = """async ([html, keywords]) => {
      const item = document.createElement("li");
      const link = item.appendChild(document.createElement("a"));
      [link.href, link.textContent] = ["page.html", "Page"];
      item.appendChild(Search.makeSearchSummary(html, new Set(keywords), ""));
      await Promise.resolve();
      return [link.getAttribute("href"), link.textContent, item.lastChild.textContent];
    }"""
    taught = page.evaluate(summary, [SECTIONS_PAGE, ["batch_stat"]])
    code_only = page.evaluate(summary, [SECTIONS_PAGE, ["flatnonzero"]])
    page.context.close()
    assert taught == ["page.html#taught", "Page > Where it is taught", TAUGHT]
    assert code_only[:2] == ["page.html", "Page"] and "flatnonzero" in code_only[2]
    assert problems == []


def tab_states(page) -> list[dict]:
    """For each framework tab-set: the key of its checked tab and the keys of the panels shown."""
    return page.evaluate(
        """() => [...document.querySelectorAll(".sd-tab-set.framework-tabs")].map((set) => ({
          checked: set.querySelector("input:checked + label").dataset.syncId,
          keys: [...set.querySelectorAll(":scope > label")].map((label) => label.dataset.syncId),
          shown: [...set.querySelectorAll(":scope > .sd-tab-content")]
            .filter((panel) => panel.getClientRects().length)
            .map((panel) => panel.previousElementSibling.dataset.syncId),
        }))"""
    )


def test_framework_tabs_switch_and_stay_in_sync(browser, served_site, site):
    counts = {
        name: len(BeautifulSoup(site.page(name), "html.parser").select(".framework-tabs")) for name in PAGES
    }
    docname = max(counts, key=counts.get)
    assert counts[docname] >= 2, counts
    page, problems = visit(browser, served_site + f"{docname}.html")  # a phone: real tabs, one at a time
    before = tab_states(page)
    first_keys = before[0]["keys"]
    target = next(key for key in first_keys if key != before[0]["checked"])
    page.locator(".sd-tab-set.framework-tabs").first.locator(f"label[data-sync-id='{target}']").click()
    after = tab_states(page)
    for state in after:
        if target in state["keys"]:
            assert state["checked"] == target and state["shown"] == [target], state
    assert sum(target in state["keys"] for state in after) >= 2
    # Another page with tabs opens on the same framework.
    other = next((name for name in PAGES if name != docname and counts[name]), None)
    if other:
        page.goto(served_site + f"{other}.html", wait_until="networkidle")
        assert all(state["checked"] == target for state in tab_states(page) if target in state["keys"])
    page.context.close()
    assert problems == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_first_visit_has_its_colour_theme_before_the_themes_script_runs(browser, served_site, scheme):
    """docs/_templates/layout.html resolves data-theme="auto" in the head: blocked, the theme's script
    could not, and without it the page is styled twice (the second time when the script resolves it)."""
    page = new_page(browser, color_scheme=scheme)
    page.route("**/pydata-sphinx-theme.js*", lambda route: route.abort())
    page.goto(served_site + "jax-state.html", wait_until="load")
    theme = page.evaluate("document.documentElement.dataset.theme")
    page.context.close()
    assert theme == scheme


def test_dark_mode_toggle_works_and_persists(browser, served_site):
    page, problems = visit(browser, served_site + "jax-state.html", viewport=DESKTOP, color_scheme="light")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.locator(".theme-switch-button").first.click()
    page.locator(".theme-change-button[data-mode='dark']").first.click()
    assert page.evaluate("[document.documentElement.dataset.theme, localStorage.getItem('mode')]") == [
        "dark",
        "dark",
    ]
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.locator("a.right-next").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(".html") and not page.url.endswith("jax-state.html")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.context.close()
    red, green, blue = (int(part) for part in background.strip("rgba()").split(",")[:3])
    assert max(red, green, blue) < 80, background  # the dark theme's colours apply
    assert problems == []


def test_copy_button_copies_exactly_the_cells_code(browser, served_site, site):
    first_cell = next(cell for cell in site.notebook("jax-state").cells if cell.cell_type == "code")
    page, problems = visit(
        browser,
        served_site + "jax-state.html",
        viewport=DESKTOP,
        permissions=["clipboard-read", "clipboard-write"],
    )
    assert page.locator("div.cell_output button.copybtn").count() == 0  # outputs have no copy button
    cell = page.locator("div.cell").first
    cell.locator("div.cell_input pre").hover()
    cell.locator("div.cell_input button.copybtn").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    page.context.close()
    assert copied == first_cell.source
    assert problems == []


TABLET = {"width": 800, "height": 1000}


@pytest.mark.parametrize("viewport", [PHONE, TABLET], ids=["375px", "800px"])
def test_the_navigation_drawer_opens_and_its_links_lead_to_other_pages(browser, served_site, viewport):
    page, problems = visit(browser, served_site + "flax-nnx.html", viewport=viewport)
    page.locator("button.primary-toggle:visible").click()
    drawer = page.locator("dialog#pst-primary-sidebar-modal")
    drawer.wait_for(state="visible")
    assert page.evaluate("document.getElementById('pst-primary-sidebar-modal').open")
    drawer.get_by_role("link", name="State pitfalls, and their fixes").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/pitfalls.html")
    page.context.close()
    assert problems == []


@pytest.mark.parametrize("viewport", [PHONE, TABLET], ids=["375px", "800px"])
def test_the_contents_drawer_opens_and_its_links_lead_to_sections(browser, served_site, viewport):
    page, problems = visit(browser, served_site + "flax-nnx.html", viewport=viewport)
    page.locator("button.secondary-toggle:visible").click()
    drawer = page.locator("dialog#pst-secondary-sidebar-modal")
    drawer.wait_for(state="visible")
    link = drawer.locator("nav a[href^='#']").nth(2)
    target = link.get_attribute("href")
    link.click()
    page.wait_for_function(f"location.hash === {target!r}")
    assert not page.evaluate("document.getElementById('pst-secondary-sidebar-modal').open"), "it closes"
    heading_top = page.evaluate(f"document.getElementById({target[1:]!r}).getBoundingClientRect().top")
    page.context.close()
    assert 0 <= heading_top < viewport["height"] / 2, "the section is scrolled into view"
    assert problems == []


def test_the_theme_bug_behind_the_drawer_workaround(browser, served_site):
    """Without the workaround in docs/_templates/layout.html, the shown ☰ button opens nothing: the
    themes' bug (pydata-sphinx-theme#2451, sphinx-book-theme#988). When this test fails, an upgrade has
    fixed it: delete the script with id drawer-workaround from the template, and this test."""

    def without_workaround(route):
        html = route.fetch().text()
        start = html.index('<script id="drawer-workaround">')
        route.fulfill(body=html[:start] + html[html.index("</script>", start) + len("</script>") :])

    page = new_page(browser, viewport=PHONE)
    page.route("**/flax-nnx.html", without_workaround)
    page.goto(served_site + "flax-nnx.html", wait_until="networkidle")
    assert page.locator("#drawer-workaround").count() == 0
    page.locator("button.primary-toggle:visible").click()
    page.wait_for_timeout(300)
    still_closed = not page.evaluate("document.getElementById('pst-primary-sidebar-modal').open")
    page.context.close()
    assert still_closed, "the theme opens the drawer itself now: remove the workaround (see the docstring)"


# The blocks whose width the layout is about: code and the text outputs of cells.
BLOCKS = "article div.highlight pre"


@pytest.fixture(scope="module")
def wide_layout(browser, served_site):
    """At 1280 px, for each page: the tables wider than their container, and how many blocks scroll."""
    found = {}
    for docname in PAGES:
        page, _ = visit(browser, served_site + f"{docname}.html", viewport=DESKTOP)
        found[docname] = page.evaluate(
            """(selector) => ({
              tables: [...document.querySelectorAll("article table")]
                .filter((table) => table.getBoundingClientRect().width > table.parentElement.clientWidth + 1)
                .map((table) => table.textContent.trim().slice(0, 40)),
              blocks: document.querySelectorAll(selector).length,
              scrolling: [...document.querySelectorAll(selector)]
                .filter((block) => block.scrollWidth > block.clientWidth + 1)
                .map((block) => block.textContent.split("\\n")[0].slice(0, 40)),
            })""",
            BLOCKS,
        )
        page.context.close()
    return found


@pytest.mark.parametrize("docname", PAGES)
def test_no_table_is_wider_than_its_container_at_1280(wide_layout, docname):
    assert wide_layout[docname]["tables"] == []


def test_at_most_one_block_in_ten_scrolls_sideways_at_1280(wide_layout):
    blocks = sum(page["blocks"] for page in wide_layout.values())
    scrolling = {name: page["scrolling"] for name, page in wide_layout.items() if page["scrolling"]}
    assert sum(map(len, scrolling.values())) <= blocks / 10, scrolling


def test_side_by_side_tabs_show_both_frameworks_from_1200_px_and_tabs_below(browser, served_site):
    for width, columns in [(1280, 2), (1200, 2), (1100, 1), (375, 1)]:
        page, problems = visit(
            browser, served_site + "pytorch-vs-flax.html", viewport={"width": width, "height": 900}
        )
        panels = page.evaluate(
            """() => [...document.querySelectorAll(".framework-tabs.side-by-side")].map((set) => ({
              shown: [...set.querySelectorAll(":scope > .sd-tab-content")]
                .filter((panel) => panel.getClientRects().length)
                .map((panel) => Math.round(panel.getBoundingClientRect().left)),
              scrolling: [...set.querySelectorAll(".cell_input pre")]
                .filter((pre) => pre.scrollWidth > pre.clientWidth + 1).length,
            }))"""
        )
        page.context.close()
        assert len(panels) >= 7 and problems == []
        for tab_set in panels:
            assert len(tab_set["shown"]) == columns, (width, tab_set)
            assert len(set(tab_set["shown"])) == columns, "next to each other, not one under the other"
            if columns == 2:
                assert tab_set["scrolling"] == 0, f"code lines fit their column at {width} px"


def test_tables_stack_on_a_phone_with_each_cell_under_its_column_name(browser, served_site):
    page, problems = visit(browser, served_site + "where-state-lives.html")
    cells = page.evaluate(
        """() => [...document.querySelectorAll("article td[data-label]")].map((cell) => ({
          display: getComputedStyle(cell).display,
          label: getComputedStyle(cell, "::before").content,
          overflows: cell.scrollWidth > cell.clientWidth + 1,
          right: cell.getBoundingClientRect().right,
        }))"""
    )
    page.context.close()
    assert len(cells) > 30 and problems == []
    assert all(cell["display"] == "block" for cell in cells)
    assert {cell["label"] for cell in cells} >= {'"PyTorch"', '"Flax Linen"', '"Flax NNX"'}
    assert not [cell for cell in cells if cell["overflows"] or cell["right"] > PHONE["width"]]


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375px", "1280px"])
def test_an_expected_error_shows_its_message_in_full_and_folds_its_traceback(browser, served_site, viewport):
    page, problems = visit(browser, served_site + "flax-nnx.html", viewport=viewport)
    error = page.locator(".expected-error").first
    assert error.locator(".expected-error-label").inner_text() == "Expected error"
    message = error.locator("pre")
    assert message.inner_text().startswith("TraceContextError: Cannot mutate Count")
    assert message.evaluate("(pre) => pre.scrollWidth <= pre.clientWidth"), "wrapped, not cut off"
    traceback = page.locator("details.expected-error-traceback").first
    assert not traceback.locator(".traceback").is_visible(), "folded until asked for"
    traceback.locator("summary").click()
    assert traceback.locator(".traceback").is_visible()
    page.context.close()
    assert problems == []


# The text of a figure, in CSS pixels at the figure's width on the page: each <text>'s font size in the
# SVG's own units (matplotlib writes pt, in a viewBox of pt), scaled by the width the page gives the image.
FIGURE_TEXT = """async (image) => {
  const svg = new DOMParser().parseFromString(await (await fetch(image.src)).text(), "image/svg+xml");
  const width = Number(svg.documentElement.getAttribute("viewBox").split(/[ ,]+/)[2]);
  const scale = image.getBoundingClientRect().width / width;
  const size = (element) => {
    for (let node = element; node && node.getAttribute; node = node.parentNode) {
      const found = (node.getAttribute("style") || "").match(/font-size: ([\\d.]+)px/);
      if (found) return parseFloat(found[1]);
    }
    return null;
  };
  const own = (element) => [...element.childNodes].filter((child) => child.nodeType === 3)
    .map((child) => child.textContent).join("").trim();
  return [...svg.querySelectorAll("text, tspan")].filter((element) => own(element))
    .map((element) => [own(element), size(element) === null ? null : size(element) * scale]);
}"""


@pytest.mark.parametrize("docname", ["flax-nnx", "train-state", "porting", "cost-of-statelessness"])
def test_every_figure_is_readable_on_a_phone(browser, served_site, docname):
    page, problems = visit(browser, served_site + f"{docname}.html")
    images = page.locator("article .cell_output img")
    assert images.count() >= 1
    for index in range(images.count()):
        image = images.nth(index)
        image.scroll_into_view_if_needed()
        image.evaluate("(image) => image.decode()")  # loaded lazily: wait for it, and for its width
        texts = image.evaluate(FIGURE_TEXT)
        assert len(texts) >= 5, "a figure's labels are text, not paths"
        small = [(text, size) for text, size in texts if size is None or size < 10]
        assert not small, f"labels under 10 CSS px at 375 px: {small[:5]}"
    page.context.close()
    assert problems == []


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_outputs_look_unlike_inputs_and_keywords_unlike_names(browser, served_site, mode):
    page, problems = visit(browser, served_site + "jax-state.html", viewport=DESKTOP, mode=mode)
    looks = page.evaluate(
        """() => {
          const style = (selector) => getComputedStyle(document.querySelector(selector));
          const [input, output] = [style("div.cell_input pre"), style("div.cell_output pre")];
          const inputFrame = style("div.cell_input div.highlight");
          const outputFrame = style("div.cell_output .output");
          return {
            backgrounds: [input.backgroundColor, output.backgroundColor],
            rules: [inputFrame.borderLeftColor, outputFrame.borderLeftColor],
            keyword: style("div.cell_input pre .k").color,
            text: input.color,
          };
        }"""
    )
    page.context.close()
    assert problems == []
    assert looks["backgrounds"][0] != looks["backgrounds"][1], "an output is not filled like an input"
    assert looks["rules"][0] != looks["rules"][1], "and its left rule has another colour"
    rgb = [
        tuple(int(part) for part in colour.strip("rgba()").split(",")[:3])
        for colour in (looks["keyword"], looks["text"])
    ]
    assert max(abs(a - b) for a, b in zip(*rgb, strict=True)) >= 60, f"keywords stand out from names: {rgb}"
