"""Every file of this repository that a comment, a docstring or a page names still exists.

A file renamed or never written leaves a stale pointer that nothing else notices, such as the docstring of
code/jax_state.py that sent its reader to a test module that did not exist.
"""

import re
import subprocess

import pytest
from conftest import ROOT

# A path in this repository: one of its top-level folders, then a file name with an extension it uses.
# Templates such as code/<page>.py do not match (the < stops the name).
REPO_PATH = re.compile(
    r"(?<![\w/.<-])((?:code|tests|docs|\.github|\.ci)/[\w./-]*\w\.(?:py|md|toml|css|html|ya?ml|json|txt|svg))"
    r"(?![\w<])"
)
# A test module named on its own, as "see test_jax_state.py".
TEST_MODULE = re.compile(r"(?<![\w/])(test_\w+\.py)\b")
SCANNED = (".py", ".md", ".toml", ".yml", ".yaml", ".html", ".css", ".cfg", ".json")
# Files that name paths which are not this repository's: api_links.toml's comments name files of the
# upstream repositories its links point to; the canary report's tests name made-up test files as data.
UPSTREAM_PATHS = {"docs/_ext/api_links.toml", "tests/test_canary_report.py"}


def named_files(text: str) -> list[str]:
    """The repository paths a text names, test modules given by name alone as tests/<name>."""
    found = [match[1] for match in REPO_PATH.finditer(text)]
    return found + [f"tests/{match[1]}" for match in TEST_MODULE.finditer(text)]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "see tests/test_site.py and docs/_ext/page_rules.py",
            ["tests/test_site.py", "docs/_ext/page_rules.py"],
        ),
        ("``code/jax_state.py``; run by test_jax_state.py", ["code/jax_state.py", "tests/test_jax_state.py"]),
        ("a script in `code/<page>.py`, tested by tests/test_<topic>.py", []),
        ("torch/utils/mkldnn.py and site-packages/flax/nnx/graph.py", []),
        ("the folder docs/ and the page docs/index.md.", ["docs/index.md"]),
        (".github/workflows/newest.yml", [".github/workflows/newest.yml"]),
    ],
)
def test_named_files_finds_repository_paths_only(text, names):
    assert named_files(text) == names


def tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    names = listed.stdout.split()
    return [name for name in names if name.endswith(SCANNED) or name == ".ci/run"]


def test_every_file_named_in_the_repository_exists():
    missing = [
        f"{name} names {path}"
        for name in tracked_text_files()
        if name not in UPSTREAM_PATHS
        for path in named_files((ROOT / name).read_text(encoding="utf8"))
        if not (ROOT / path).exists()
    ]
    assert not missing, "\n".join(missing)
