"""A hidden cell's toggle is named by the prompt it shows ("Show the solution"), for screen readers too.

MyST-NB renders a cell tagged ``hide-input``/``hide-cell`` as ``<details>`` whose ``<summary>`` shows a
prompt (``code_prompt_show``, e.g. "Show the solution") but carries ``aria-label="Toggle hidden
content"``: a screen reader announces the label, not the words on screen, which fails WCAG 2.5.3
(axe: label-content-name-mismatch). This extension drops that label from each page's body, so the
summary is named by its visible prompt.

Usage: add ``"hidden_cells"`` to ``extensions``. The pure part is :func:`name_toggles_by_prompt`.
"""

MYST_NB_SUMMARY = '<summary aria-label="Toggle hidden content">'


def name_toggles_by_prompt(body: str) -> str:
    return body.replace(MYST_NB_SUMMARY, "<summary>")


def rewrite_body(app, pagename, templatename, context, doctree):
    if "body" in context:
        context["body"] = name_toggles_by_prompt(context["body"])


def setup(app):
    app.connect("html-page-context", rewrite_body)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
