"""The guide's "Previous" and "Next" links stay within the guide.

Sphinx links each page to the one before and after it in the order of the root document's toctrees, all
of them: the last lesson's "Next" led to the contributors' page template. This extension drops the
previous/next links that cross between the pages of the toctrees captioned as standing apart (conf.py:
``lesson_sequence_apart``, the captions) and the other pages, so that the lessons form one sequence and
the contributors' pages another.

Usage: add ``"lesson_sequence"`` to ``extensions``. The decision is the pure function :func:`crosses`;
:func:`pages_apart` reads the root document's toctrees.
"""

import posixpath

from sphinx import addnodes


def crosses(page: str, other: str, apart: set[str]) -> bool:
    """Whether a link from ``page`` to ``other`` leaves its sequence: one is apart and the other not."""
    return (page in apart) != (other in apart)


def linked_page(page: str, link: str) -> str:
    """The page a relative link from ``page`` points to, as a Sphinx document name."""
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), link.split("#")[0]))
    return target.removesuffix(".html")


def pages_apart(env, captions: list[str]) -> set[str]:
    """The pages of the root document's toctrees whose caption is one of ``captions``."""
    doctree = env.get_doctree(env.config.root_doc)
    return {
        docname
        for toctree in doctree.findall(addnodes.toctree)
        if toctree.get("caption") in captions
        for _, docname in toctree["entries"]
    }


def drop_crossing_links(app, pagename, templatename, context, doctree):
    """html-page-context handler."""
    apart = pages_apart(app.env, app.config.lesson_sequence_apart)
    for key in ("prev", "next"):
        link = context.get(key)
        if link and crosses(pagename, linked_page(pagename, link["link"]), apart):
            context[key] = None


def setup(app):
    app.add_config_value("lesson_sequence_apart", [], "html", types=[list])
    app.connect("html-page-context", drop_crossing_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
