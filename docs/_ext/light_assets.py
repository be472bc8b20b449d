"""A light first visit: the theme's Font Awesome script and its unused glyphs are not sent to readers.

pydata-sphinx-theme loads ``fontawesome.js`` (1.56 MB, 540 KB gzipped) on every page, to turn ``<i
class="fa-...">`` icons into inline SVG; its stylesheet already draws the same icons with the Font
Awesome web fonts, which hold some 2,000 glyphs (fa-solid alone is 115 KB) for the twenty or so the site
shows. It also loads Sphinx's search index and search scripts on every page, for a search-as-you-type
that this site does not turn on, and its pages wait, before their first paint, for ten stylesheets and
seven scripts that have nothing to do before the page is loaded.

After an HTML build this extension, without touching the theme:

- removes the ``fontawesome.js`` script from every page and deletes it from ``_static`` (a page that
  still asks for it shows up as a 404 in the browser tests);
- on every page but ``search.html``: removes the search scripts, and defers the scripts that wait for
  the page to load anyway (:data:`DEFERRABLE`);
- replaces each page's stylesheet links by one link to a bundle of the same files in the same order
  (``_static/styles/bundle-*.css``, their ``@import``s inlined and their ``url()``s rebased);
- drops Font Awesome's CSS rules for the icons no page uses, and rewrites each Font Awesome web font
  as a subset of the theme's original that holds only the glyphs the site can show: the icons the
  theme's stylesheet draws itself (admonitions, external links, breadcrumbs, ...) and every ``fa-*``
  icon named in a page or in a script.

Icons look as before, drawn from the same fonts. It can run again on a site it has lightened (Sphinx
rewrites only the pages that changed); a font subset is made once per set of glyphs and kept beside
the doctrees, so that a rebuild with nothing changed stays fast. Usage: add ``"light_assets"`` to
``extensions``. The text work is in pure functions (:func:`strip_assets`, :func:`bundle_stylesheets`,
:func:`bundle_css`, :func:`trim_icon_table`, :func:`wanted_codepoints`); :func:`lighten_site` applies
them to a built site.
"""

import hashlib
import io
import logging
import posixpath
import re
from pathlib import Path

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
# keep their order; documentation_options.js stays as it is, for the inline scripts that read it. The
# search page keeps all of them as they are (its search script runs before any deferred one).
DEFERRABLE = re.compile(
    r'<script (?![^>]*\b(?:defer|async)\b)([^>]*src="[^"]*'
    r'(?:doctools|sphinx_highlight|clipboard\.min|copybutton|sphinx-book-theme|design-tabs)\.js[^"]*"[^>]*)></script>'
)
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
ICON_RULE = re.compile(r'((?:\.fa-[a-z0-9-]+,?)+)\{--fa:"[^"]*"\}')
SOURCE_MAP = re.compile(r"/\*# sourceMappingURL=[^*]*\*/\s*$")
WEBFONTS = Path("vendor") / "fontawesome" / "webfonts"
THEME_CSS = Path("styles") / "pydata-sphinx-theme.css"
# A rule of Font Awesome's own table: `.fa-magnifying-glass,.fa-search{--fa:"\f002"}`.
NAMED_ICON = re.compile(r'((?:\.fa-[a-z0-9-]+,?)+)\{--fa:"\\([0-9a-f]{1,6}) ?"')
PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")  # the theme's own icon variables hold the glyph itself
CLASS_ATTRIBUTE = re.compile(r'class="([^"]*)"')
ICON_NAME = re.compile(r"\bfa-[a-z0-9-]+")


def strip_assets(html: str, search_page: bool) -> str:
    """A page without the Font Awesome script; other than the search page, without the search scripts and
    with its scripts deferred."""
    html = FONT_AWESOME_SCRIPT.sub("", html)
    if search_page:
        return html
    return DEFERRABLE.sub(r"<script defer \1></script>", SEARCH_SCRIPTS.sub("", html))


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

    return "\n".join(f"/* {relative} */\n{read(relative)}" for relative in files)


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

    ``cache`` keeps the font subsets from one build to the next.

    Safe to run again on the same site (Sphinx rewrites only the pages that changed): a page already
    lightened is left as it is, and its bundle is made again from the stylesheets its link names.
    """
    static = outdir / "_static"
    pages = {
        page: page.read_text(encoding="utf8")
        for page in sorted(outdir.glob("**/*.html"))
        if page.relative_to(outdir).parts[0] != "_static"  # the themes' template fragments
    }
    names = set().union(*(icon_names(html) for html in pages.values()))
    for script in sorted(static.glob("**/*.js")):
        names |= set(ICON_NAME.findall(script.read_text(encoding="utf8")))
    for leftover in sorted((static / "scripts").glob("fontawesome.js*")):
        leftover.unlink()
    css = theme_static_file(theme_dirs, THEME_CSS).read_text(encoding="utf8")
    (static / THEME_CSS).write_text(trim_icon_table(css, names), encoding="utf8")
    (static / THEME_CSS).with_suffix(".css.map").unlink(missing_ok=True)
    bundles = set()
    for page, html in pages.items():
        files = page_stylesheets(html, page, static)
        if files:
            href = posixpath.relpath((static / bundle_name(files)).as_posix(), page.parent.as_posix())
            html = bundle_stylesheets(html, files, href)
        bundles |= {tuple(listed.split()) for listed in BUNDLE_LINK.findall(html)}
        search_page = page.relative_to(outdir).as_posix() == SEARCH_PAGE
        lighter = strip_assets(html, search_page)
        if lighter != pages[page]:
            page.write_text(lighter, encoding="utf8")
    for files in sorted(bundles):
        (static / bundle_name(list(files))).write_text(bundle_css(static, list(files)), encoding="utf8")
    wanted = wanted_codepoints(css, names)
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
