"""Link API names in the pages to the official documentation, with no network access.

Intersphinx would fetch each project's ``objects.inv`` at build time, which CI cannot do. Instead,
``api_links.toml`` beside this file lists, project by project, a URL template and the names the pages
use. A role such as ``{func}`jax.jit``` or ``{class}`torch.nn.Linear``` that Sphinx cannot resolve
locally is looked up there; a name that is in no table stays a nitpicky warning, which fails the build,
so a new API name must be added to the table (and ``nox -s linkcheck`` checks every URL online).

Table format::

    [jax]
    url = "https://docs.jax.dev/en/latest/_autosummary/{name}.html"
    names = ["jax.jit", "jax.random.key"]

    [optax]
    url = "https://optax.readthedocs.io/en/latest/api/{page}.html#{name}"
    pages = { "optax.sgd" = "optimizers" }

``{name}`` is the full dotted name; ``{page}`` the page a name lives on, for projects whose URLs
cannot be derived from the name alone.
"""

import tomllib
from functools import cache
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

TABLE = Path(__file__).with_name("api_links.toml")


class InventoryError(ValueError):
    """The link table is malformed."""


def parse_inventory(table: dict) -> dict[str, str]:
    """Turn the TOML table into a ``{name: url}`` dict, rejecting anything ambiguous."""
    urls: dict[str, str] = {}
    for project, entry in table.items():
        if not isinstance(entry, dict) or "url" not in entry:
            raise InventoryError(f"[{project}] needs a url template")
        unknown = set(entry) - {"url", "names", "pages"}
        if unknown:
            raise InventoryError(f"[{project}] has unknown keys: {', '.join(sorted(unknown))}")
        template = entry["url"]
        if "{name}" not in template:
            raise InventoryError(f"[{project}] url has no {{name}}")
        uses_page = "{page}" in template
        if uses_page and "names" in entry:
            raise InventoryError(f"[{project}] url has {{page}}, so list its names under pages")
        if not uses_page and "pages" in entry:
            raise InventoryError(f"[{project}] lists pages but its url has no {{page}}")
        # A list, not a dict: a name repeated within one table's names must be caught too.
        pages = list(entry.get("pages", {}).items()) or [(name, "") for name in entry.get("names", [])]
        for name, page in pages:
            if name in urls:
                raise InventoryError(f"{name} is listed twice")
            urls[name] = template.format(name=name, page=page)
    return urls


@cache
def load_inventory(path: Path = TABLE) -> dict[str, str]:
    with path.open("rb") as table:
        return parse_inventory(tomllib.load(table))


def link_to_official_docs(app, env, node, contnode):
    """missing-reference handler: an external link for a Python name the table knows."""
    if node.get("refdomain") != "py":
        return None
    url = load_inventory().get(node["reftarget"])
    if url is None:
        return None
    return nodes.reference("", "", contnode, refuri=url, internal=False, classes=["api-link"])


def depend_on_table(app, doctree):
    """Re-write a page that links to an API when the table changes, so a fixed link takes effect."""
    if any(ref.get("refdomain") == "py" for ref in doctree.findall(addnodes.pending_xref)):
        app.env.note_dependency(str(TABLE))


def setup(app):
    app.connect("doctree-read", depend_on_table)
    app.connect("missing-reference", link_to_official_docs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
