"""A page's cells run wherever a reader runs its notebook (Colab's Linux, and macOS or Windows on their own
machine), not only on the Linux that builds the site: no call that some of those systems lack, unless
the cell checks for it first (``hasattr``, ``sys.platform``, ``os.path.exists``) or catches what it
raises there (``try``/``except``)."""

import ast

import pytest
from conftest import DOCS, PAGES
from IPython.core.inputtransformer2 import TransformerManager
from myst_nb.core.read import read_myst_markdown_notebook

# What fails on a system readers use, by the "Availability" the Python documentation gives, and the
# exception a cell catches to run on without it.
NOT_EVERYWHERE = {
    "os.sched_getaffinity": ("Linux only", "AttributeError"),
    "os.sched_setaffinity": ("Linux only", "AttributeError"),
    "os.sysconf": ("Unix only, not on Windows", "AttributeError"),
    "os.getloadavg": ("Unix only, not on Windows", "AttributeError"),
    "os.uname": ("Unix only, not on Windows", "AttributeError"),
    "os.getuid": ("Unix only, not on Windows", "AttributeError"),
    "os.fork": ("Unix only, not on Windows", "AttributeError"),
    "signal.alarm": ("Unix only, not on Windows", "AttributeError"),
    "signal.SIGALRM": ("Unix only, not on Windows", "AttributeError"),
    "resource": ("a Unix-only module, not on Windows", "ImportError"),
    "fcntl": ("a Unix-only module, not on Windows", "ImportError"),
}
# Files of Linux's kernel, which macOS and Windows do not have.
LINUX_FILES = ("/proc/", "/sys/")
# What a handler may name to catch each exception (a base class catches it too).
CATCHES = {
    "AttributeError": {"AttributeError", "Exception", "BaseException"},
    "ImportError": {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"},
    "OSError": {"OSError", "FileNotFoundError", "IOError", "Exception", "BaseException"},
}
# A test that looks at the system before the code that depends on it.
PLATFORM_CHECKS = {"hasattr", "platform", "system", "exists", "is_file", "isfile"}


def imported_names(trees: list[ast.Module]) -> dict[str, str]:
    """{name in the code: what it names} for each import, across the cells (they share one namespace)."""
    names = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update({alias.asname or alias.name: alias.name for alias in node.names})
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.update(
                    {alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names}
                )
    return names


def dependency(node: ast.AST, names: dict[str, str]) -> tuple[str, str, str] | None:
    """(what, why, the exception it raises elsewhere) when ``node`` uses what not every system has."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(LINUX_FILES):
        return node.value, "a file of Linux only", "OSError"
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
        qualified = f"{names[node.value.id]}.{node.attr}"
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
        qualified = names[node.id]
    elif isinstance(node, ast.ImportFrom):
        qualified = node.module
    elif isinstance(node, ast.Import):
        qualified = next((alias.name for alias in node.names if alias.name in NOT_EVERYWHERE), None)
    else:
        return None
    if qualified in NOT_EVERYWHERE:
        return qualified, *NOT_EVERYWHERE[qualified]
    return None


def checks_the_platform(test: ast.AST) -> bool:
    return any(
        (isinstance(node, ast.Name) and node.id == "hasattr")
        or (isinstance(node, ast.Attribute) and node.attr in PLATFORM_CHECKS)
        for node in ast.walk(test)
    )


def guarded(node: ast.AST, parents: dict[ast.AST, ast.AST], raises: str) -> bool:
    """Whether a branch on the platform or a handler of ``raises`` encloses ``node``."""
    child, parent = node, parents.get(node)
    while parent is not None:
        # In the branch that the check chooses, or in the check itself (os.path.exists("/proc/...")).
        if isinstance(parent, ast.If | ast.IfExp | ast.While) and checks_the_platform(parent.test):
            return True
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                if handler.type is None or any(ast.unparse(name) in CATCHES[raises] for name in caught):
                    return True
        child, parent = parent, parents.get(parent)
    return False


def unportable(cells: list[str]) -> list[tuple[int, int, str, str]]:
    """(cell, line in the cell, what, why) for each use of what not every system has, unguarded."""
    trees = [ast.parse(TransformerManager().transform_cell(source)) for source in cells]
    names = imported_names(trees)
    found = []
    for number, tree in enumerate(trees):
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if (uses := dependency(node, names)) and not guarded(node, parents, uses[2]):
                found.append((number, node.lineno, uses[0], uses[1]))
    # Two uses on one line are one finding.
    return sorted(set(found))


@pytest.mark.parametrize(
    ("cells", "found"),
    [
        (["import os\nprint(os.cpu_count())"], []),
        (["import os\nos.sched_getaffinity(0)"], [(0, 2, "os.sched_getaffinity", "Linux only")]),
        (["import os", "n = len(os.sched_getaffinity(0))"], [(1, 1, "os.sched_getaffinity", "Linux only")]),
        (
            ["from os import sysconf as conf\nconf('SC_PAGE_SIZE')"],
            [(0, 2, "os.sysconf", "Unix only, not on Windows")],
        ),
        (["open('/proc/cpuinfo').read()"], [(0, 1, "/proc/cpuinfo", "a file of Linux only")]),
        (["import resource"], [(0, 1, "resource", "a Unix-only module, not on Windows")]),
        (["import os\nif hasattr(os, 'sched_setaffinity'):\n    os.sched_setaffinity(0, {0})"], []),
        (["import os\nn = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 1"], []),
        (["import sys, os\nif sys.platform == 'linux':\n    os.getloadavg()"], []),
        (["import os\nif os.path.exists('/proc/cpuinfo'):\n    open('/proc/cpuinfo')"], []),
        (["try:\n    text = open('/proc/cpuinfo').read()\nexcept OSError:\n    text = ''"], []),
        (
            ["try:\n    text = open('/proc/cpuinfo').read()\nexcept ValueError:\n    text = ''"],
            [(0, 2, "/proc/cpuinfo", "a file of Linux only")],
        ),
        (["import os\ntry:\n    os.sysconf('X')\nexcept (AttributeError, ValueError):\n    pass"], []),
        (["try:\n    import resource\nexcept ImportError:\n    resource = None"], []),
        (["%pip install x\nimport os\nos.uname()"], [(0, 3, "os.uname", "Unix only, not on Windows")]),
    ],
    ids=[
        "portable",
        "Linux call",
        "imported in an earlier cell",
        "imported under another name",
        "Linux file",
        "Unix module",
        "if hasattr",
        "conditional expression",
        "if sys.platform",
        "if the file exists",
        "except OSError",
        "except another error",
        "except a tuple",
        "except ImportError",
        "after a magic",
    ],
)
def test_what_not_every_system_has_is_found_unless_guarded(cells, found):
    assert unportable(cells) == found


def page_cells(docname: str) -> tuple[list[str], list[int]]:
    """The page's code cells, and the line of the page where each one's code starts."""
    text = (DOCS / f"{docname}.md").read_text(encoding="utf8")
    notebook = read_myst_markdown_notebook(text, add_source_map=True)
    lines = text.splitlines()
    cells, starts = [], []
    for cell, directive in zip(notebook.cells, notebook.metadata["source_map"], strict=True):
        if cell.cell_type == "code" and cell.source.strip():
            first = cell.source.splitlines()[0]
            cells.append(cell.source)
            starts.append(lines.index(first, directive) + 1)  # after the directive and its options
    return cells, starts


@pytest.mark.parametrize("docname", PAGES)
def test_the_page_cells_run_on_every_system_readers_use(docname):
    cells, starts = page_cells(docname)
    found = [
        f"docs/{docname}.md:{starts[cell] + line - 1}: {what}: {why}"
        for cell, line, what, why in unportable(cells)
    ]
    assert not found, (
        "fails on macOS or Windows; check first (hasattr, sys.platform, os.path.exists) or catch what it "
        "raises there, as code/cost_of_statelessness.py does:\n" + "\n".join(found)
    )
