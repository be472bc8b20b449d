"""A light first visit: the theme's Font Awesome script and its unused glyphs are not sent to readers.

pydata-sphinx-theme loads ``fontawesome.js`` (1.56 MB, 540 KB gzipped) on every page, to turn ``<i
class="fa-...">`` icons into inline SVG; its stylesheet already draws the same icons with the Font
Awesome web fonts, which hold some 2,000 glyphs (fa-solid alone is 115 KB) for the twenty or so the site
shows. It also loads Sphinx's search index and search scripts on every page, for a search-as-you-type
that this site does not turn on, and its pages wait, before their first paint, for ten stylesheets and
seven scripts that have nothing to do before the page is loaded. Of the 450 KB of those stylesheets
(mostly Bootstrap), three fifths are rules for classes that no page uses; and the code blocks hold a
``<span>`` for every name and punctuation mark, half of a long page's elements, drawn in the same
colour as the text around them.

After an HTML build this extension, without touching the theme:

- removes the ``fontawesome.js`` script from every page and deletes it from ``_static`` (a page that
  still asks for it shows up as a 404 in the browser tests);
- deletes the Jinja templates that the themes copy into ``_static`` with their static files
  (``webpack-macros.html``, ``sbt-webpack-macros.html``): unrendered, they are no page of the site, and
  would be published as broken ones (:func:`is_template`);
- removes the search scripts from every page but ``search.html``, and defers the scripts that wait for
  the page to load anyway (:data:`DEFERRABLE`); drops the theme's preloads of its deferred scripts,
  which would share the first paint's bandwidth with the stylesheet; images load lazily;
- replaces each page's stylesheet links by one link to a bundle of the same files in the same order
  (``_static/styles/bundle-*.css``, their ``@import``s inlined and their ``url()``s rebased), without
  the rules that no page or script can match (:mod:`css_rules`);
- drops Font Awesome's CSS rules for the icons no page uses, and rewrites each Font Awesome web font
  as a subset of the theme's original that holds only the glyphs the site can show: the icons the
  theme's stylesheet draws itself (admonitions, external links, breadcrumbs, ...) and every ``fa-*``
  icon named in a page or in a script;
- unwraps the code blocks' tokens that the Pygments stylesheet draws in the text's own colour, in the
  light and the dark theme (:func:`plain_token_classes`).

Icons and code look as before. It can run again on a site it has lightened (Sphinx rewrites only the
pages that changed); a font subset and a pruned bundle are made once per input and kept beside the
doctrees, so that a rebuild with nothing changed stays fast. Usage: add ``"light_assets"`` to
``extensions``. The text work is in pure functions (:func:`strip_assets`, :func:`is_template`,
:func:`bundle_stylesheets`, :func:`bundle_css`, :func:`trim_icon_table`, :func:`wanted_codepoints`,
:func:`plain_token_classes`, :func:`unwrap_tokens`); :func:`lighten_site` applies them to a built site.
"""

import hashlib
import io
import logging
import posixpath
import re
from pathlib import Path

import css_rules
from sphinx.util import logging as sphinx_logging

logger = sphinx_logging.getLogger(__name__)

FONT_AWESOME_SCRIPT = re.compile(
    r'[ \t]*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>\n?'
)
SEARCH_SCRIPTS = re.compile(
    r'[ \t]*<script src="[^"]*(?:_static/searchtools\.js|_static/language_data\.js|searchindex\.js)">'
    r"</script>\n?"
)
SEARCH_PAGE = "search.html"
# Scripts that only act once the page has loaded: deferred, they stop blocking its first paint. They
# keep their order (search-sections.js changes what searchtools.js defines; the search index, last, hands
# its data to the search script); documentation_options.js stays as it is, for the inline scripts that
# read it.
DEFERRABLE = re.compile(
    r'<script (?![^>]*\b(?:defer|async)\b)([^>]*src="[^"]*'
    r"(?:doctools|sphinx_highlight|clipboard\.min|copybutton|sphinx-book-theme|design-tabs|searchtools"
    r'|search-sections|language_data|searchindex)\.js[^"]*"[^>]*)></script>'
)
# pydata-sphinx-theme preloads the two scripts it runs deferred at the end of the page: fetched at high
# priority, they share the bandwidth of the first paint's stylesheet, and nothing runs them sooner.
SCRIPT_PRELOAD = re.compile(r'[ \t]*<link rel="preload" as="script" href="[^"]*" />\n?')
# Cell outputs' figures (and the launch menu's Colab logo, hidden until opened) load when scrolled near.
EAGER_IMAGE = re.compile(r"<img (?![^>]*\bloading=)")
# A code block as Sphinx writes it: Pygments' spans between <div class="highlight"><pre> and </pre>.
CODE_BLOCK = re.compile(r'(<div class="highlight"><pre>)(.*?)(</pre>)', re.DOTALL)
# A class in a compound selector (`span.n:hover`), and what ends the compound: a combinator, a comma, a
# block, or the parenthesis of a pseudo-class such as :not(), whose classes do not count.
CLASS_IN_COMPOUND = re.compile(r"\.-?[A-Za-z_][\w-]*")
COMPOUND_ENDS = frozenset(" \t\n,>+~{}()")
# A rule of the Pygments stylesheet: `html[data-theme="dark"] .highlight .n { color: #F8F8F2 } /* Name */`,
# or, without a token class, the colour of the block's text.
PYGMENTS_RULE = re.compile(r"^(.*?)\.highlight(?: \.([\w-]+))? \{([^}]*)\}", re.MULTILINE)
# Ten stylesheets (one importing Sphinx's basic.css) are ten requests that the first paint waits for,
# more than a browser makes at once to one host: each page gets one bundle of them, in the same order.
STYLESHEET = re.compile(
    r'[ \t]*<link (?=[^>]*rel="stylesheet")(?![^>]*(?:media|data-bundle-of)=)[^>]*href="([^":]+)"[^>]*/?>\n?'
)
# The bundle's link names the stylesheets it holds, so that a later build remakes it from them.
BUNDLE_LINK = re.compile(r'<link rel="stylesheet" href="[^"]*" data-bundle-of="([^"]*)" />')
CSS_IMPORT = re.compile(r'@import (?:url\()?"([^"]+)"\)?;')
CSS_URL = re.compile(r'url\((["\']?)([^)"\']+)\1\)')
BUNDLES = "styles"
BUNDLE_HEADER = re.compile(r"^/\* (\S+) \*/$")  # where each stylesheet starts in a bundle
ICON_RULE = re.compile(r'((?:\.fa-[a-z0-9-]+,?)+)\{--fa:"[^"]*"\}')
SOURCE_MAP = re.compile(r"/\*# sourceMappingURL=[^*]*\*/\s*$")
WEBFONTS = Path("vendor") / "fontawesome" / "webfonts"
THEME_CSS = Path("styles") / "pydata-sphinx-theme.css"
PYGMENTS_CSS = "pygments.css"
# A rule of Font Awesome's own table: `.fa-magnifying-glass,.fa-search{--fa:"\f002"}`.
NAMED_ICON = re.compile(r'((?:\.fa-[a-z0-9-]+,?)+)\{--fa:"\\([0-9a-f]{1,6}) ?"')
PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")  # the theme's own icon variables hold the glyph itself
CLASS_ATTRIBUTE = re.compile(r'class="([^"]*)"')
# A Jinja statement or expression, as the themes' templates hold them: `{% macro ... %}`, `{{ pathto() }}`.
JINJA_TAG = re.compile(r"\{%[-+]?\s|\{\{-?\s")
ICON_NAME = re.compile(r"\bfa-[a-z0-9-]+")


def strip_assets(html: str, search_page: bool) -> str:
    """A page without the Font Awesome script and the script preloads, with its scripts deferred and its
    images lazy; other than the search page, without the search scripts."""
    html = SCRIPT_PRELOAD.sub("", FONT_AWESOME_SCRIPT.sub("", html))
    if not search_page:
        html = SEARCH_SCRIPTS.sub("", html)
    return EAGER_IMAGE.sub('<img loading="lazy" ', DEFERRABLE.sub(r"<script defer \1></script>", html))


def is_template(html: str) -> bool:
    """Whether an HTML file is a Jinja template, not rendered: it holds a Jinja statement or expression."""
    return JINJA_TAG.search(html) is not None


def plain_token_classes(pygments_css: str, other_css: str) -> set[str]:
    """The Pygments token classes drawn exactly as the code block's own text, in every theme: their only
    rule sets the block's colour, and no other stylesheet (``other_css``) names them."""
    declarations = {}  # {(theme's selector, token class or ""): {property: value}}
    for scope, token, body in PYGMENTS_RULE.findall(pygments_css):
        pairs = (part.split(":", 1) for part in body.split(";") if ":" in part)
        declarations[scope, token] = {name.strip(): value.strip().lower() for name, value in pairs}
    text_colour = {scope: style.get("color") for (scope, token), style in declarations.items() if not token}
    plain = {}  # {token class: whether each of its rules sets only the text's colour}
    for (scope, token), style in declarations.items():
        if token:
            sets_text_colour = text_colour.get(scope) is not None and style == {"color": text_colour[scope]}
            plain[token] = plain.get(token, True) and sets_text_colour
    plain_here = {token for token, is_plain in plain.items() if is_plain}
    return {token for token in plain_here if not styles_lone_class(other_css, token)}


def styles_lone_class(css: str, name: str) -> bool:
    """Whether a selector of ``css`` can match an element whose only class is ``name``: one whose compound
    names ``name`` and no other class (``.n``, ``span.n``, ``.n:hover``; not ``.sig-param.n``)."""
    for match in re.finditer(rf"\.{re.escape(name)}(?![\w-])", css):
        start, end = match.start(), match.end()
        while start > 0 and css[start - 1] not in COMPOUND_ENDS:
            start -= 1
        while end < len(css) and css[end] not in COMPOUND_ENDS:
            end += 1
        if len(CLASS_IN_COMPOUND.findall(css, start, end)) == 1:
            return True
    return False


def unwrap_tokens(html: str, classes: set[str]) -> str:
    """The page with the code blocks' ``<span class="C">text</span>`` replaced by ``text`` for each C in
    ``classes``."""
    if not classes:
        return html
    span = re.compile(rf'<span class="(?:{"|".join(map(re.escape, sorted(classes)))})">([^<]*)</span>')
    return CODE_BLOCK.sub(lambda block: block[1] + span.sub(r"\1", block[2]) + block[3], html)


def trim_icon_table(css: str, names: set[str]) -> str:
    """The stylesheet without Font Awesome's rules for the icons no page uses (their glyphs are gone)."""

    def keep(rule: re.Match) -> str:
        used = any(name.removeprefix(".") in names for name in rule[1].split(","))
        return rule[0] if used else ""

    return SOURCE_MAP.sub("", ICON_RULE.sub(keep, css))  # the map no longer matches the file


def icon_codepoints(css: str) -> tuple[dict[str, int], set[int]]:
    """From the theme's stylesheet: {icon class: code point}, and the code points it draws itself."""
    named = {}
    for selectors, hexcode in NAMED_ICON.findall(css):
        for name in selectors.split(","):
            named[name.removeprefix(".")] = int(hexcode, 16)
    drawn = {ord(char) for char in PRIVATE_USE.findall(NAMED_ICON.sub("", css))}
    return named, drawn


def icon_names(html: str) -> set[str]:
    """The ``fa-*`` class names used in a page."""
    return {name for classes in CLASS_ATTRIBUTE.findall(html) for name in ICON_NAME.findall(classes)}


def wanted_codepoints(css: str, names: set[str]) -> set[int]:
    """The glyphs to keep: those the stylesheet draws, and those of the icon classes in use."""
    named, drawn = icon_codepoints(css)
    return drawn | {named[name] for name in names if name in named}


def rebase_urls(css: str, source: str, target: str) -> str:
    """``css`` read from the folder ``source``, with its relative url()s made relative to ``target``."""

    def rebase(match: re.Match) -> str:
        quote, url = match[1], match[2]
        if url.startswith(("data:", "#", "/")) or ":" in url.split("/")[0]:
            return match[0]
        moved = posixpath.relpath(posixpath.normpath(posixpath.join(source, url)), target)
        return f"url({quote}{moved}{quote})"

    return CSS_URL.sub(rebase, css)


def bundle_css(static: Path, files: list[str]) -> str:
    """The stylesheets ``files`` (paths under ``static``) as one, for a file in ``static/BUNDLES``;
    their ``@import``s of local files are replaced by the files."""

    def read(relative: str) -> str:
        folder = posixpath.dirname(relative)
        css = (static / relative).read_text(encoding="utf8")
        css = CSS_IMPORT.sub(lambda match: read(posixpath.normpath(posixpath.join(folder, match[1]))), css)
        return rebase_urls(SOURCE_MAP.sub("", css), folder, BUNDLES)

    return "\n".join(f"/* {relative} */\n{read(relative)}" for relative in files)  # see BUNDLE_HEADER


def bundle_name(files: list[str]) -> str:
    """The bundle's file name under _static: one per list of stylesheets."""
    return f"{BUNDLES}/bundle-{hashlib.sha256(' '.join(files).encode()).hexdigest()[:12]}.css"


def bundle_stylesheets(html: str, files: list[str], href: str) -> str:
    """The page with its local stylesheet links (to ``files``) replaced by one link to their bundle at
    ``href``, where the first of them was."""
    link = f'<link rel="stylesheet" href="{href}" data-bundle-of="{" ".join(files)}" />\n'
    position = STYLESHEET.search(html)
    if position is None:
        return html
    rest = STYLESHEET.sub("", html[position.start() :])
    return html[: position.start()] + link + rest


def subset_font(original: bytes, codepoints: set[int]) -> bytes:
    """A WOFF2 font with only the glyphs of ``codepoints`` (those the font has)."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # not its INFO lines in the build's log

    font = TTFont(io.BytesIO(original))
    options = subset.Options()
    options.flavor = "woff2"
    options.layout_features = ["*"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=codepoints & set(font.getBestCmap()))
    subsetter.subset(font)
    out = io.BytesIO()
    font.flavor = "woff2"
    font.save(out)
    return out.getvalue()


def cached_subset_font(original: bytes, codepoints: set[int], cache: Path) -> bytes:
    """:func:`subset_font`, kept in ``cache`` under a name made from the font and the glyphs asked for."""
    key = hashlib.sha256(original + repr(sorted(codepoints)).encode()).hexdigest()[:16]
    stored = cache / f"font-subset-{key}.woff2"
    if not stored.exists():
        cache.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(subset_font(original, codepoints))
    return stored.read_bytes()


def source_line(bundle: str, line: int) -> tuple[str, int]:
    """The stylesheet (under _static) and its line that a line of a bundle from :func:`bundle_css` comes
    from (for a stylesheet that imports another, a line of the stylesheet with its imports inlined)."""
    lines = bundle.splitlines()[:line]
    for number in range(len(lines), 0, -1):
        header = BUNDLE_HEADER.match(lines[number - 1])
        if header:
            return header[1], line - number
    return "", line


def cached_pruned_css(css: str, names: set[str], patterns: list[re.Pattern], cache: Path) -> tuple[str, Path]:
    """:func:`css_rules.drop_unmatched_rules`, and the file in ``cache`` that keeps it, named from its
    inputs."""
    inputs = "\0".join([css, *sorted(names), *(pattern.pattern for pattern in patterns)])
    stored = cache / f"pruned-{hashlib.sha256(inputs.encode()).hexdigest()[:16]}.css"
    if not stored.exists():
        cache.mkdir(parents=True, exist_ok=True)
        stored.write_text(css_rules.drop_unmatched_rules(css, names, patterns), encoding="utf8")
    return stored.read_text(encoding="utf8"), stored


def prune_bundles(
    static: Path, bundles: list[tuple[str, ...]], pages: list[str], scripts: list[str], cache: Path
) -> None:
    """Write each bundle without the rules that none of ``pages`` and ``scripts`` (their text) can match;
    ``cache`` keeps the pruned bundles of this run (and no older ones)."""
    in_use, built = set(), []
    for html in pages:
        in_use |= css_rules.words(html)
    for script in scripts:
        in_use |= css_rules.words(script)
        built += css_rules.built_name_patterns(script)
    kept = set()
    for files in bundles:
        css = bundle_css(static, list(files))
        try:
            pruned, stored = cached_pruned_css(css, in_use, built, cache)
        except css_rules.CSSError as error:
            stylesheet, line = source_line(css, error.line)
            raise css_rules.CSSError(error.message, line, f"_static/{stylesheet}") from None
        (static / bundle_name(list(files))).write_text(pruned, encoding="utf8")
        kept.add(stored)
    for stale in set(cache.glob("pruned-*.css")) - kept:
        stale.unlink()


def theme_static_file(theme_dirs: list[str], relative: Path) -> Path:
    """The theme's own copy of a static file (not the output's, which an earlier run may have rewritten)."""
    for folder in theme_dirs:
        path = Path(folder) / "static" / relative
        if path.exists():
            return path
    raise FileNotFoundError(f"no theme ships static/{relative.as_posix()}")


def page_stylesheets(html: str, page: Path, static: Path) -> list[str]:
    """The page's local stylesheets, as paths under _static, in order."""
    found = []
    for href in STYLESHEET.findall(html):
        path = (page.parent / href.split("?")[0]).resolve()
        found.append(path.relative_to(static.resolve()).as_posix())
    return found


def lighten_site(outdir: Path, theme_dirs: list[str], cache: Path) -> dict[str, int]:
    """Lighten the pages, the stylesheets and the fonts of a built site; returns {font file: bytes now}.

    ``cache`` keeps the font subsets and the pruned bundles from one build to the next.

    Safe to run again on the same site (Sphinx rewrites only the pages that changed): a page already
    lightened is left as it is, and its bundle is made again from the stylesheets its link names.
    """
    static = outdir / "_static"
    for template in sorted(static.glob("**/*.html")):
        if is_template(template.read_text(encoding="utf8")):
            template.unlink()  # the themes' macros, which their layout.html imports from the theme itself
    pages = {
        page: page.read_text(encoding="utf8")
        for page in sorted(outdir.glob("**/*.html"))
        if page.relative_to(outdir).parts[0] != "_static"  # static files, not pages of the site
    }
    for leftover in sorted((static / "scripts").glob("fontawesome.js*")):
        leftover.unlink()  # before the scripts are read: it names every icon there is
    scripts = [script.read_text(encoding="utf8") for script in sorted(static.glob("**/*.js"))]
    names = set().union(*(icon_names(html) for html in pages.values()))
    for script in scripts:
        names |= set(ICON_NAME.findall(script))
    css = theme_static_file(theme_dirs, THEME_CSS).read_text(encoding="utf8")
    (static / THEME_CSS).write_text(trim_icon_table(css, names), encoding="utf8")
    (static / THEME_CSS).with_suffix(".css.map").unlink(missing_ok=True)
    bundles, plain, lighter = set(), {}, {}
    for page, html in pages.items():
        files = page_stylesheets(html, page, static)
        if files:
            href = posixpath.relpath((static / bundle_name(files)).as_posix(), page.parent.as_posix())
            html = bundle_stylesheets(html, files, href)
        for listed in BUNDLE_LINK.findall(html):
            files = tuple(listed.split())
            bundles.add(files)
            if files not in plain:
                others = [file for file in files if file != PYGMENTS_CSS]
                pygments = (static / PYGMENTS_CSS).read_text(encoding="utf8") if PYGMENTS_CSS in files else ""
                plain[files] = plain_token_classes(pygments, bundle_css(static, others))
            html = unwrap_tokens(html, plain[files])
        search_page = page.relative_to(outdir).as_posix() == SEARCH_PAGE
        lighter[page] = strip_assets(html, search_page)
        if lighter[page] != pages[page]:
            page.write_text(lighter[page], encoding="utf8")
    prune_bundles(static, sorted(bundles), list(lighter.values()), scripts, cache)
    # sphinx-book-theme's stylesheet draws icons of its own too: the caret of its folded contents.
    others = [sheet.read_text(encoding="utf8") for sheet in sorted(static.glob("styles/*.css"))]
    wanted = wanted_codepoints("\n".join([css, *others]), names)
    sizes = {}
    for font in sorted((static / WEBFONTS).glob("*.woff2")):
        original = theme_static_file(theme_dirs, WEBFONTS / font.name).read_bytes()
        font.write_bytes(cached_subset_font(original, wanted, cache))
        sizes[font.name] = font.stat().st_size
    return sizes


def on_build_finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    cache = Path(app.doctreedir) / "light_assets"
    sizes = lighten_site(Path(app.outdir), app.builder.theme.get_theme_dirs(), cache)
    fonts = ", ".join(f"{name} {size} B" for name, size in sizes.items())
    logger.info("light_assets: Font Awesome subset to %s", fonts)


def setup(app):
    # Last: pydata-sphinx-theme writes its pygments.css for light and dark at build-finished too.
    app.connect("build-finished", on_build_finished, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
