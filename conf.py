"""Sphinx configuration for the site; the pages live in docs/ (sphinx-build -c . docs ...)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).parent.resolve()
# Local extensions live beside the pages they serve.
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

# -- Project ---------------------------------------------------------------
project = "Model state in JAX, Flax and PyTorch"
author = "The project's contributors"
copyright = "2026, the project's contributors"
# The GitHub repository: every link to it (edit, issues, source, Colab notebooks) is derived from this
# name. In GitHub Actions, the repository the workflow runs in (GITHUB_REPOSITORY: a fork, or this one
# after a move), so that the site it publishes links to itself; elsewhere, this project's.
REPOSITORY = os.environ.get("GITHUB_REPOSITORY") or "state-guide/model-state"
BRANCH = "main"
# The deploy workflow publishes each page's generated notebook there (.github/workflows/deploy.yml).
NOTEBOOKS_BRANCH = "notebooks"

# -- Extensions ------------------------------------------------------------
extensions = [
    "myst_nb",  # MyST markdown pages whose code cells run at build time
    "sphinx_design",  # tabs and grids
    "sphinx_copybutton",  # a copy button on every code block
    "framework_tabs",  # cells tagged tab-pytorch/tab-linen/tab-nnx become synced tabs
    "api_links",  # API names link to the official docs, offline
    "strict_execution",  # a failing cell names its page, cell and error
    "kernel_history",  # the pages' kernels keep no IPython history, which parallel kernels corrupt
    "build_paths",  # no path of the build machine in any output
    "expected_errors",  # an error shown on purpose: labelled, its message in full, its traceback folded
    "page_rules",  # house rules: no unexecuted Python block, a label on every page, no .ipynb
    "page_description",  # every page has its own meta description
    "execution_footer",  # each executed page says when its outputs were produced, and with what
    "execution_table",  # the status page's execution table says "ok" or "failed", in words, not emoji
    "reader_notebooks",  # each page as a notebook to download or open in Colab, with an install cell
    "hidden_cells",  # a hidden cell's toggle is named by its prompt ("Show the solution")
    "lesson_sequence",  # "Previous" and "Next" stay within the guide, and within the contributors' pages
    "stream_outputs",  # what a cell printed in one block, however the kernel cut it
    "wide_blocks",  # code, outputs, tables and tab-sets too wide for the text column get the margin too
    "stacked_tables",  # on a phone, a table's rows stack, each cell under its column's name
    "light_assets",  # no Font Awesome script, fonts cut to the icons shown, unused CSS rules dropped
]

# -- Strictness ------------------------------------------------------------
# Every reference must resolve: a typo in a cross-reference is a build error.
nitpicky = True
# The build runs with -W: any warning fails it, so nothing is suppressed here.

# -- Sources ---------------------------------------------------------------
exclude_patterns = ["_ext", "_build", "**/.ipynb_checkpoints"]
# Pages are MyST markdown only; page_rules reports a stray .ipynb instead of building it.
source_suffix = {".md": "myst-nb"}
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
# MyST-NB's merge of a cell's stream chunks rewrites the notebook it saves (lines repeat there):
# stream_outputs merges them in the page instead.
nb_merge_streams = False

# -- Rendering (MyST-NB) ---------------------------------------------------------
# A cell tagged hide-input (helper code: plotting, tables, timing) shows its output and folds its code.
nb_code_prompt_show = "Show code"
nb_code_prompt_hide = "Hide code"

# -- HTML ------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "Model state in JAX, Flax and PyTorch"
html_static_path = ["docs/_static"]
html_favicon = "docs/_static/favicon.svg"  # without one, browsers ask for /favicon.ico and log a 404
html_css_files = ["reader.css"]  # dark-mode outputs and figures, small-screen fixes
templates_path = ["docs/_templates"]  # execution-footer.html
# Follow the reader's system setting until they choose; without it the theme logs a console error.
html_context = {"default_mode": "auto"}
html_use_index = False  # no page adds index entries; an empty genindex.html is a page without content
html_theme_options = {
    "repository_url": f"https://github.com/{REPOSITORY}",
    "repository_branch": BRANCH,
    "path_to_docs": "docs",
    "use_repository_button": True,
    "use_edit_page_button": True,  # "Edit this page"
    "use_issues_button": True,  # "Open an issue"
    "use_download_button": True,  # .ipynb (reader_notebooks) and .md
    # reader_notebooks points this button at the generated notebook of the NOTEBOOKS_BRANCH.
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "footer_content_items": ["author.html", "copyright.html", "execution-footer.html"],
    # The theme's dark default (a11y-high-contrast-dark) draws keywords and names in two near whites.
    # GitHub's colour-blind-safe dark style gives keywords a colour of their own (orange) and keeps every
    # token above 5:1 on the theme's dark code background (#29313d), which tests/test_browser.py checks.
    "pygments_dark_style": "github-dark-colorblind",
}

# -- The lessons' sequence ----------------------------------------------------------
# The pages of these toctrees (their captions, in docs/index.md) are not lessons: "Next" from the last
# lesson does not lead to them.
lesson_sequence_apart = ["Contributing"]

# -- Readers' notebooks, the footer ------------------------------------------
reader_notebooks_repository = REPOSITORY
reader_notebooks_branch = NOTEBOOKS_BRANCH
reader_notebooks_requirements = str(ROOT / "requirements.txt")
# The stack the pages use, installed by each notebook's first cell at the versions of requirements.txt.
reader_notebooks_packages = [
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "torch",
    "numpy",
    "matplotlib",
    "treescope",
]
execution_footer_packages = ["jax", "flax", "optax", "torch"]
# The pages' own descriptions are in their front matter (page_description checks them); this one is
# for the page Sphinx generates.
page_description_generated = {
    "search": "Search the guide to model state in JAX, Flax and PyTorch: its pages, sections and code.",
}

# -- Copy buttons -------------------------------------------------------------
# On code only: not on cell outputs (MyST-NB's div.output), and never the prompts or output lines of
# a >>> example (Pygments' .gp and .go spans).
copybutton_selector = ":not(.output) > div.highlight > pre"
copybutton_exclude = ".linenos, .gp, .go"
