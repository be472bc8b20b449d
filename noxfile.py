"""Tasks for building and checking the site: `nox -l` lists them, `nox -s NAME` runs one."""

import nox

nox.options.default_venv_backend = "venv"
# Installing torch and JAX is the slow part: keep each session's virtualenv between runs.
nox.options.reuse_venv = "yes"

PYTHON = "3.11"
REQUIREMENTS = "requirements.txt"
HTML_DIR = "_build/html"
# conf.py sits at the root (-c .) and the pages in docs/; -W turns warnings into errors, --keep-going
# reports all of them, -n (nitpicky) makes every unresolved reference one of them.
SPHINX_STRICT = ["sphinx-build", "-c", ".", "-W", "--keep-going", "-n"]
# What lint needs to parse the pages without running them: no JAX or torch.
PAGE_TOOLS = ["myst-nb", "sphinx-book-theme", "sphinx-design", "sphinx-copybutton", "tinycss2"]


def install_stack(session):
    session.install("-r", REQUIREMENTS)


@nox.session(python=PYTHON)
def docs(session):
    """Build the HTML site into _build/html (executed outputs cached in .jupyter_cache)."""
    install_stack(session)
    # -j auto: pages are read, and so executed, in parallel, one process per core.
    session.run(*SPHINX_STRICT, "-j", "auto", "-b", "html", "docs", HTML_DIR, *session.posargs)
    session.log(f"The site: {session.invoked_from}/{HTML_DIR}/index.html")


@nox.session(python=PYTHON, default=False)
def serve(session):
    """Live preview at http://127.0.0.1:8000, rebuilt when a page or a script changes."""
    install_stack(session)
    # Not strict: a preview keeps serving while a page is half written.
    session.run("sphinx-autobuild", "-c", ".", "--watch", "code", "docs", HTML_DIR, *session.posargs)


@nox.session(python=PYTHON)
def doctest(session):
    """Run every >>> example in the pages and in the scripts of code/."""
    install_stack(session)
    doctest_args = ["--doctest-glob=*.md", "--doctest-modules", "--ignore=docs/_ext"]
    session.run("pytest", "-p", "no:cacheprovider", *doctest_args, "docs", "code")


@nox.session(python=PYTHON)
def tests(session):
    """The test suite: a clean build of the site, its HTML, the scripts and the extensions."""
    install_stack(session)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session):
    """The pre-commit checks on every file, then every page parsed (syntax, references) without running it."""
    session.install("-c", REQUIREMENTS, "pre-commit", *PAGE_TOOLS)
    # ruff, whitespace, YAML, no notebooks, zizmor and actionlint: see .pre-commit-config.yaml.
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure")
    # The dummy builder reads every page and resolves every reference but writes nothing.
    no_execution = ["-D", "nb_execution_mode=off", "-E"]
    session.run(*SPHINX_STRICT, *no_execution, "-b", "dummy", "docs", "_build/lint")


@nox.session(python=PYTHON, default=False)
def linkcheck(session):
    """Check that every external link answers (needs the internet, so CI does not run it)."""
    install_stack(session)
    session.run(*SPHINX_STRICT, "-b", "linkcheck", "docs", "_build/linkcheck")


@nox.session(python=PYTHON, default=False)
def bench(session):
    """Time cold, unchanged, prose-edit and code-edit builds; write the table into README.md."""
    install_stack(session)
    session.run("python", "tests/bench_build_speed.py")


@nox.session(python=PYTHON, default=False, name="bench-pages")
def bench_pages(session):
    """Weigh each page's first visit and score it with Lighthouse; write the table into docs/status.md."""
    install_stack(session)
    session.run("npm", "ci", "--no-audit", "--no-fund", external=True)  # Lighthouse, from package-lock.json
    session.run(*SPHINX_STRICT, "-j", "auto", "-b", "html", "docs", HTML_DIR)
    session.run("python", "tests/bench_pages.py", "--site", HTML_DIR, *session.posargs)


@nox.session(python=PYTHON, default=False)
def newest(session):
    """The test suite against the newest releases of the taught stack (the weekly CI run)."""
    install_stack(session)
    session.install("--upgrade", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "torch")
    session.run("pip", "list")
    session.run("pytest", *session.posargs)
