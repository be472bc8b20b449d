"""A local extension's own stylesheet, published with the site.

framework_tabs and hidden_cells each style what they render with a stylesheet in ``docs/_static``. A
project that uses the extension without that folder in ``html_static_path`` (the tests' throwaway
projects) must still publish it, and the site, which has the folder there already, must not copy it twice.

Usage, in an extension's ``setup``: ``publish_stylesheet(app, STYLESHEET, priority=600)``.
"""

from pathlib import Path


def folder_is_missing(confdir: Path, static_paths: list[str], folder: Path) -> bool:
    """Whether ``folder`` is none of ``html_static_path`` (read, as Sphinx reads it, from ``confdir``)."""
    return all((confdir / path).resolve() != folder.resolve() for path in static_paths)


def publish_stylesheet(app, stylesheet: Path, priority: int) -> None:
    """Link ``stylesheet`` from every page; copy its folder with the static files unless conf.py does."""

    def add_folder(app):
        if app.builder.format != "html":
            return
        paths = app.config.html_static_path
        if folder_is_missing(Path(app.confdir), paths, stylesheet.parent):
            paths.append(str(stylesheet.parent.resolve()))

    app.connect("builder-inited", add_folder)
    app.add_css_file(stylesheet.name, priority=priority)
