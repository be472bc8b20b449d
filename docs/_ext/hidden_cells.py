"""A hidden cell's toggle is named by the prompt it shows ("Show the solution"), and is valid HTML.

MyST-NB renders a cell tagged ``hide-input``/``hide-cell`` as ``<details>`` whose ``<summary>`` shows a
prompt (``code_prompt_show``, e.g. "Show the solution") but carries ``aria-label="Toggle hidden
content"``: a screen reader announces the label, not the words on screen, which fails WCAG 2.5.3
(axe: label-content-name-mismatch). It also writes the two prompts (shown while folded and while open) as
``<p>`` elements, which a ``<summary>`` may not hold (it holds phrasing content: the Nu HTML Checker
reports each one). This extension drops that label from each page's body, so the summary is named by
its visible prompt, and writes the prompts as ``<span>`` elements with the same classes;
``_static/hidden-cells.css``, which the extension adds to the pages itself, shows and hides them as
MyST-NB's stylesheet does its ``<p>``.

Usage: add ``"hidden_cells"`` to ``extensions``. The pure parts are :func:`name_toggles_by_prompt` and
:func:`prompts_as_phrasing`.
"""

import re
from pathlib import Path

from own_stylesheet import publish_stylesheet

MYST_NB_SUMMARY = '<summary aria-label="Toggle hidden content">'
# The two prompts of a MyST-NB toggle, as its HTML visitor writes them (the text is escaped: no "<").
MYST_NB_PROMPT = re.compile(r'<p class="((?:collapsed|expanded) admonition-title)">([^<]*)</p>')
STYLESHEET = Path(__file__).parents[1] / "_static" / "hidden-cells.css"


def name_toggles_by_prompt(body: str) -> str:
    return body.replace(MYST_NB_SUMMARY, "<summary>")


def prompts_as_phrasing(body: str) -> str:
    """The body with each MyST-NB toggle's prompts as ``<span>``, which a ``<summary>`` may hold."""
    return MYST_NB_PROMPT.sub(r'<span class="\1">\2</span>', body)


def rewrite_body(app, pagename, templatename, context, doctree):
    if "body" in context:
        context["body"] = prompts_as_phrasing(name_toggles_by_prompt(context["body"]))


def setup(app):
    app.connect("html-page-context", rewrite_body)
    publish_stylesheet(app, STYLESHEET, priority=600)  # after MyST-NB's stylesheet (its own rules: 500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
