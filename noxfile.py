"""Tasks for building and checking the site: `nox -l` lists them, `nox -s NAME` runs one."""

import json
import shutil
from pathlib import Path

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
# One test process per core; each file's tests in one process, which makes its module fixtures once.
# The slowest tests at the end of the log: the suite must stay under CI's 20 minutes as pages are added.
PYTEST_PARALLEL = ["-n", "auto", "--dist", "loadfile", "--durations=25"]
# The >>> examples: in the pages (*.md) and in the scripts of code/; docs/_ext has none.
DOCTEST_ARGS = ["--doctest-glob=*.md", "--doctest-modules", "--ignore=docs/_ext", "docs", "code"]


def install_stack(session):
    session.install("-r", REQUIREMENTS)


def install_browser_checks(session):
    """The npm packages of the browser checks (axe-core, Lighthouse), and a Chromium in $CHROMIUM."""
    if not shutil.which("npm"):
        session.error("no npm: install Node.js 20 (apt-get install nodejs npm, or https://nodejs.org)")
    # npm ci empties node_modules before it installs: only when node_modules differs from the lock file,
    # not under the feet of another run that is using them.
    installed = Path("node_modules/.package-lock.json")
    locked = json.loads(Path("package-lock.json").read_text())["packages"]
    locked.pop("")  # the project itself, which npm's record of node_modules leaves out
    if not installed.is_file() or json.loads(installed.read_text())["packages"] != locked:
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
    # $CHROMIUM, Debian's, or Playwright's own; or one line that says how to get one.
    session.env["CHROMIUM"] = session.run("python", "tests/chromium.py", silent=True).splitlines()[-1]


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


@nox.session(python=PYTHON, default=False)
def doctest(session):
    """Run every >>> example in the pages and in the scripts of code/ (`tests` runs them too)."""
    install_stack(session)
    session.run("pytest", "-p", "no:cacheprovider", *DOCTEST_ARGS)


@nox.session(python=PYTHON)
def tests(session):
    """The doctests, then the test suite: a clean build, its HTML, the scripts, the extensions and the
    site in Chromium. One session for both: installing the stack takes longer than the doctests."""
    install_stack(session)
    install_browser_checks(session)
    session.run("pytest", "-p", "no:cacheprovider", *DOCTEST_ARGS)
    session.run("pytest", *PYTEST_PARALLEL, *session.posargs)


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
    install_browser_checks(session)
    session.run(*SPHINX_STRICT, "-j", "auto", "-b", "html", "docs", HTML_DIR)
    session.run("python", "tests/bench_pages.py", "--site", HTML_DIR, *session.posargs)


def canary(session, group):
    """Upgrade one group of requirements.txt to its newest releases, the others pinned; test; report."""
    folder = f"_build/canary/{session.name}"
    report = ["python", "tests/canary_report.py"]
    install_stack(session)
    install_browser_checks(session)
    session.run(*report, "plan", folder, group)
    session.install("--upgrade", "-r", f"{folder}/upgrade.txt", "-c", f"{folder}/held.txt")
    # The newest release of each, installed alone: the report names those that the rest held back.
    newest = ["--dry-run", "--quiet", "--no-deps", "--ignore-installed", "--report", f"{folder}/newest.json"]
    session.run("python", "-m", "pip", "install", *newest, "-r", f"{folder}/upgrade.txt")
    # A failing test does not stop the canary: the report below lists every failure, then fails the session.
    any_outcome = range(6)
    doctests = ["pytest", "-p", "no:cacheprovider", f"--junitxml={folder}/doctests.xml", *DOCTEST_ARGS]
    session.run(*doctests, success_codes=any_outcome)
    tests = ["pytest", *PYTEST_PARALLEL, f"--junitxml={folder}/tests.xml", *session.posargs]
    session.run(*tests, success_codes=any_outcome)
    session.run(*report, "report", folder, group)


# A canary installs afresh, as the weekly CI run does: a virtualenv kept from an earlier run would keep what
# that run upgraded, and the report would not see it move.
@nox.session(python=PYTHON, default=False, reuse_venv=False)
def newest(session):
    """Weekly canary: the tests with the newest JAX, Flax, Optax, Orbax and PyTorch, the toolchain pinned."""
    canary(session, "The stack the pages teach")


@nox.session(python=PYTHON, default=False, reuse_venv=False, name="newest-toolchain")
def newest_toolchain(session):
    """Weekly canary: the tests with the newest Sphinx, MyST-NB, themes and so on, the taught stack pinned."""
    canary(session, "Building the site")
