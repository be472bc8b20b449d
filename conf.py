"""Sphinx configuration for the site; the pages live in docs/ (sphinx-build -c . docs ...)."""

import sys
from pathlib import Path

ROOT = Path(__file__).parent.resolve()
# Local extensions live beside the pages they serve.
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

# -- Project ---------------------------------------------------------------
project = "Model state in JAX, Flax and PyTorch"
author = "The project's contributors"
copyright = "2026, the project's contributors"

# -- Extensions ------------------------------------------------------------
extensions = [
    "myst_nb",  # MyST markdown pages whose code cells run at build time
    "sphinx_design",  # tabs and grids
    "sphinx_copybutton",  # a copy button on every code block
    "framework_tabs",  # cells tagged tab-pytorch/tab-linen/tab-nnx become synced tabs
    "api_links",  # API names link to the official docs, offline
    "strict_execution",  # a failing cell names its page, cell and error
]

# -- Strictness ------------------------------------------------------------
# Every reference must resolve: a typo in a cross-reference is a build error.
nitpicky = True
# The build runs with -W: any warning fails it, so nothing is suppressed here.

# -- Sources ---------------------------------------------------------------
exclude_patterns = ["_ext", "_build", "**/.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
# "(label)=" targets before headings are the only anchors; no implicit slugs.
myst_heading_anchors = 0

# -- Execution (MyST-NB) ---------------------------------------------------
# Run every cell of every page, through jupyter-cache so that an unchanged page
# is not re-executed; the cache lives at the repo root where CI can keep it.
nb_execution_mode = "cache"
nb_execution_cache_path = str(ROOT / ".jupyter_cache")
nb_execution_excludepatterns = []  # no page is ever excluded
nb_execution_timeout = 120  # seconds per cell; a hung cell fails the build
nb_execution_raise_on_error = False  # strict_execution reports it better; -W fails the build
nb_execution_allow_errors = False  # ...unless it is tagged raises-exception
nb_execution_show_tb = False  # strict_execution prints the failing cell and its error
nb_merge_streams = True  # stdout and stderr in one output, in order

# -- HTML ------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "Model state in JAX, Flax and PyTorch"
html_static_path = ["docs/_static"]
