"""A footer on each executed page: when its outputs were produced, and with which library versions.

The date is the one MyST-NB records for the page's execution (for a page served from the execution
cache, the date of the run that is cached, which produced the outputs shown); the versions are those
installed where the site is built, the environment the kernel runs in. Pages without code cells get no
footer.

The theme shows it through the ``execution-footer.html`` component (``docs/_templates/``), listed in
sphinx-book-theme's ``footer_content_items``. Configuration: ``execution_footer_packages``, the
distributions to name. Usage: add ``"execution_footer"`` to ``extensions``. The text is the pure
function :func:`footer_text`.
"""

import platform
from datetime import UTC, datetime
from importlib.metadata import version

from myst_nb.sphinx_ import NbMetadataCollector


def footer_text(mtime: float, versions: dict[str, str], python: str) -> str:
    """'Outputs produced on 2026-01-31 (UTC) with Python 3.11.2, jax 0.10.2, ...'."""
    day = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d")
    stack = ", ".join(f"{name} {number}" for name, number in versions.items())
    return f"Outputs produced on {day} (UTC) with Python {python}, {stack}."


def add_footer(app, pagename, templatename, context, doctree):
    """html-page-context: put the footer's text in the page's template context."""
    data = NbMetadataCollector.get_exec_data(app.env, pagename) if doctree is not None else None
    if not data or not data.get("mtime"):
        return
    versions = {name: version(name) for name in app.config.execution_footer_packages}
    context["execution_footer"] = footer_text(data["mtime"], versions, platform.python_version())


def setup(app):
    app.add_config_value("execution_footer_packages", [], "html", list)
    app.connect("html-page-context", add_footer)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
