"""Each page as a notebook a reader can download or open in Colab, generated from its MyST source.

MyST-NB writes each page as a notebook into ``jupyter_execute/``; sphinx-book-theme copies it to
``_sources/<page>.ipynb`` for its download button when ``launch_buttons`` is set. That notebook holds
the outputs only when the page ran in this build: a page taken from the execution cache is written
without them (MyST-NB merges the cached outputs into a copy). This extension replaces that copy with the
notebook a reader needs outside this site: the page's cells with their outputs from the execution
cache, after a first cell that installs the pinned stack::

    # PyTorch's CPU build, from PyTorch's index (PyPI's torch for Linux is the CUDA build, several GB).
    # Where that index cannot be reached, this line fails and the next one gets torch from PyPI.
    %pip install --quiet torch==2.13.0 --no-deps --index-url https://download.pytorch.org/whl/cpu
    %pip install --quiet jax==0.10.2 jaxlib==0.10.2 flax==0.12.8 ... torch==2.13.0 ...

Torch comes first, alone, the way PyTorch's own install instructions get its CPU build: from its wheel
index (``--index-url``), since PyPI's torch for Linux is the CUDA build (16 ``nvidia-*`` packages, several
GB) that no page uses. The next line then finds torch installed and takes its dependencies (``--no-deps``
left them out), and the rest of the stack, from PyPI. Where PyTorch's index cannot be reached, the first
line fails after pip's few seconds of retries, ``%pip`` goes on, and the second installs torch from PyPI:
the notebook still runs. PyTorch's index is not an ``--extra-index-url`` of the whole line because pip
would then ask it about every package, and pay those retries for each one where it cannot be reached.

A page that imports more than the stack every page gets declares it in its front matter, and its
notebook installs that too, at the version of ``requirements.txt`` (the status page prints the
versions of the build's tools)::

    reader_notebook:
      packages: [sphinx, myst-nb]

Before each cell that raises an exception on purpose (tagged ``raises-exception``) it puts a short note:
Jupyter's "Run all" goes on past such a cell, Colab's stops there.

The versions come from ``requirements.txt``, so the notebook installs what the page was built with (in
a copy of the project without that file, such as a test's, from the packages installed).

The deploy workflow publishes ``_build/html/_sources/**/*.ipynb`` to the root of the branch
``reader_notebooks_branch``; this extension points the theme's Colab button at that copy,
``https://colab.research.google.com/github/<repository>/blob/<branch>/<page>.ipynb`` (the theme's own
link would open the ``.md`` source, which Colab cannot read).

Configuration (conf.py): ``reader_notebooks_repository`` ("owner/name"), ``reader_notebooks_branch``,
``reader_notebooks_requirements`` (path of requirements.txt), ``reader_notebooks_packages`` (the
distributions every notebook installs, each pinned in requirements.txt). Usage: add
``"reader_notebooks"`` to ``extensions`` after ``"sphinx_book_theme"`` is the theme, with
``launch_buttons`` holding a ``colab_url``. The pure parts are :func:`pins`, :func:`install_line`,
:func:`install_cell`, :func:`page_packages`, :func:`reader_notebook` and :func:`colab_url`.
"""

import re
from importlib.metadata import version
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from sphinx.errors import ConfigError

COLAB = "https://colab.research.google.com"
EXPECTED_ERROR_NOTE = (
    "The next cell raises an exception on purpose. Colab's *Run all* stops there: "
    "to go on, select the cell after it and choose *Runtime > Run after*."
)
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;#]+)")
# Torch first, alone, from PyTorch's CPU index: see the module's docstring.
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYTORCH_CPU_NOTE = (
    "# PyTorch's CPU build, from PyTorch's index (PyPI's torch for Linux is the CUDA build, several GB).\n"
    "# Where that index cannot be reached, this line fails and the next one gets torch from PyPI."
)


def pins(requirements: str) -> dict[str, str]:
    """{distribution name (normalised): version} for every ``name==version`` line."""
    found = {}
    for line in requirements.splitlines():
        match = PIN.match(line.strip())
        if match:
            found[normalise(match[1])] = match[2]
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_pins(packages: list[str]) -> str:
    """requirements.txt lines for the installed versions of ``packages``."""
    return "\n".join(f"{name}=={version(name)}" for name in packages)


def install_line(requirements: str, packages: list[str]) -> str:
    """One %pip line that installs each package at its version in requirements.txt."""
    pinned = pins(requirements)
    missing = [name for name in packages if normalise(name) not in pinned]
    if missing:
        raise ConfigError(f"not pinned with == in requirements.txt: {missing}")
    return "%pip install --quiet " + " ".join(f"{name}=={pinned[normalise(name)]}" for name in packages)


def install_cell(requirements: str, packages: list[str]) -> str:
    """The notebook's first cell: torch alone from PyTorch's CPU index, if it is one of the packages, then
    every package from PyPI (which finds torch installed, or installs it where that index failed)."""
    line = install_line(requirements, packages)
    if "torch" not in map(normalise, packages):
        return line
    torch = f"{install_line(requirements, ['torch'])} --no-deps --index-url {PYTORCH_CPU_INDEX}"
    return "\n".join([PYTORCH_CPU_NOTE, torch, line])


def page_packages(metadata: dict) -> list[str]:
    """What a page's front matter adds to its notebook's install cell (``reader_notebook: packages:``)."""
    declared = metadata.get("reader_notebook", {}).get("packages", [])
    if not isinstance(declared, list) or not all(isinstance(name, str) for name in declared):
        raise ConfigError(f"reader_notebook: packages must be a list of distribution names, not {declared!r}")
    return declared


def tagged(cell: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    cell.metadata["tags"] = [tag]
    cell.pop("id", None)
    return cell


def reader_notebook(executed: nbformat.NotebookNode, install: str) -> nbformat.NotebookNode:
    """The executed page with the install cell first and a note before each expected error; the
    executed notebook itself is not changed."""
    notebook = nbformat.from_dict(executed)
    cells = [tagged(nbformat.v4.new_code_cell(install), "install-pinned-stack")]
    for cell in notebook.cells:
        if "raises-exception" in cell.metadata.get("tags", []):
            cells.append(tagged(nbformat.v4.new_markdown_cell(EXPECTED_ERROR_NOTE), "expected-error-note"))
        cells.append(cell)
    notebook.cells = cells
    for number, each in enumerate(notebook.cells):
        each["id"] = f"cell-{number}"  # unique ids, as nbformat 4.5 requires
    return notebook


def colab_url(repository: str, branch: str, docname: str) -> str:
    return f"{COLAB}/github/{repository}/blob/{branch}/{docname}.ipynb"


def with_cached_outputs(notebook: nbformat.NotebookNode, cache_path: str) -> nbformat.NotebookNode:
    """The notebook with the outputs jupyter-cache holds for its code (unchanged when it holds none)."""
    if not Path(cache_path).is_dir():
        return notebook
    try:
        return get_cache(cache_path).merge_match_into_notebook(notebook)[1]
    except KeyError:  # no record: the page ran without the cache
        return notebook


def write_notebook(app, pagename, templatename, context, doctree):
    """html-page-context, after sphinx-book-theme's buttons: the notebook, and the Colab link to it."""
    if not context.get("ipynb_source"):
        return  # not a notebook page, or the theme's launch buttons are off
    config = app.config
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    pinned = Path(config.reader_notebooks_requirements)
    packages = config.reader_notebooks_packages
    page = nbformat.read(executed, as_version=4)
    try:
        packages = [*packages, *page_packages(page.metadata)]
        requirements = pinned.read_text(encoding="utf8") if pinned.is_file() else installed_pins(packages)
        install = install_cell(requirements, packages)
    except ConfigError as error:
        raise ConfigError(f"{pagename}: reader notebook: {error}") from None
    if config.nb_execution_mode == "cache":
        page = with_cached_outputs(page, config.nb_execution_cache_path)
    notebook = reader_notebook(page, install)
    target = Path(app.outdir) / "_sources" / context["ipynb_source"]
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    url = colab_url(config.reader_notebooks_repository, config.reader_notebooks_branch, pagename)
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            if str(button.get("url", "")).startswith(f"{COLAB}/"):
                button["url"] = url


def setup(app):
    app.add_config_value("reader_notebooks_repository", "", "html", str)
    app.add_config_value("reader_notebooks_branch", "notebooks", "html", str)
    app.add_config_value("reader_notebooks_requirements", "requirements.txt", "html", str)
    app.add_config_value("reader_notebooks_packages", [], "html", list)
    # After sphinx-book-theme's launch and download buttons (priority 501).
    app.connect("html-page-context", write_notebook, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
