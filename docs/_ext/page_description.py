"""Every page has its own meta description: search engines show it, and a page without one scores lower.

A page sets it in its front matter (MyST writes it as ``<meta name="description">``)::

    ---
    html_meta:
      description: How jax.jit treats Python side effects, and the explicit-state pattern that fixes it.
    jupytext: ...
    ---

The build fails (a warning, with ``-W``) for a page without a description, for a description shorter
than :data:`SHORTEST` or longer than :data:`LONGEST` characters (search engines cut it), and for two
pages with the same description.

Pages that Sphinx generates (``search``) have no front matter: ``page_description_generated`` maps
their names to their descriptions, which get the same checks.

Usage: add ``"page_description"`` to ``extensions``; ``page_description_required = False`` turns the
checks off (for throwaway test projects). :func:`description_problem` checks one page and
:func:`duplicates` the whole site; the Sphinx handlers only collect the descriptions and report.
"""

from html import escape

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

SHORTEST, LONGEST = 50, 160
HOW = "set it in the front matter: 'html_meta:' then '  description: <one sentence about the page>'"


def description_problem(description: str | None) -> str | None:
    """What is wrong with one page's description, or None."""
    if description is None or not description.strip():
        return f"the page has no meta description; {HOW}"
    length = len(description.strip())
    if length < SHORTEST:
        return f"the meta description has {length} characters; write at least {SHORTEST}"
    if length > LONGEST:
        return f"the meta description has {length} characters; search engines cut it after {LONGEST}"
    return None


def duplicates(descriptions: dict[str, str]) -> list[tuple[str, str]]:
    """(docname, message) for every page whose description another page already has, in page order."""
    first_with = {}
    problems = []
    for docname in sorted(descriptions):
        text = " ".join(descriptions[docname].split()).lower()
        if text in first_with:
            problems.append((docname, f"the meta description is the same as {first_with[text]}'s"))
        else:
            first_with[text] = docname
    return problems


def page_description(doctree: nodes.document) -> str | None:
    for meta in doctree.findall(nodes.meta):
        if meta.get("name") == "description":
            return meta.get("content")
    return None


def collect(app, doctree):
    """doctree-read: check the page and remember its description for the site-wide check."""
    description = page_description(doctree)
    problem = description_problem(description)
    docname = app.env.docname
    if problem and app.config.page_description_required:
        logger.warning(problem, location=docname, type="page_description")
    app.env.page_descriptions = getattr(app.env, "page_descriptions", {})
    app.env.page_descriptions[docname] = description or ""


def purge(app, env, docname):
    getattr(env, "page_descriptions", {}).pop(docname, None)


def merge(app, env, docnames, other):
    env.page_descriptions = getattr(env, "page_descriptions", {})
    env.page_descriptions.update(
        {name: text for name, text in getattr(other, "page_descriptions", {}).items() if name in docnames}
    )


def check_site(app, env):
    """env-check-consistency: no two pages share a description."""
    if not app.config.page_description_required:
        return
    found = {name: text for name, text in getattr(env, "page_descriptions", {}).items() if text}
    for docname, message in duplicates(found):
        logger.warning(message, location=docname, type="page_description")


def describe_generated_page(app, pagename, templatename, context, doctree):
    """html-page-context: the meta description of a page that Sphinx generates (no doctree)."""
    description = app.config.page_description_generated.get(pagename)
    if doctree is not None or description is None:
        return
    problem = description_problem(description)
    if problem:
        logger.warning(f"page_description_generated[{pagename!r}]: {problem}", type="page_description")
    context["metatags"] = (
        context.get("metatags", "") + f'<meta name="description" content="{escape(description)}" />\n'
    )


def setup(app):
    app.add_config_value("page_description_required", True, "env", bool)
    app.add_config_value("page_description_generated", {}, "html", dict)
    app.connect("html-page-context", describe_generated_page)
    app.connect("doctree-read", collect)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("env-check-consistency", check_site)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
