"""The notebooks readers download or open in Colab run where they run them: top to bottom, in a new
virtualenv with only what their own install cell installs (docs/_ext/reader_notebooks.py makes that cell;
tests/notebook_runner.py runs them, the reader_runs fixture all of them)."""

import subprocess

import nbformat
import pytest
from conftest import PAGES
from notebook_runner import overlay_virtualenv, problem, python_of, run
from reader_notebooks import PYTORCH_CPU_INDEX, PYTORCH_CPU_NOTE, install_cell, page_packages
from sphinx.errors import ConfigError

REQUIREMENTS = "jax==0.10.2\ntorch==2.13.0\nsphinx==9.0.4\n"


@pytest.mark.parametrize(
    ("packages", "cell"),
    [
        (["jax"], "%pip install --quiet jax==0.10.2"),
        (
            ["jax", "torch"],
            f"{PYTORCH_CPU_NOTE}\n"
            f"%pip install --quiet torch==2.13.0 --no-deps --index-url {PYTORCH_CPU_INDEX}\n"
            "%pip install --quiet jax==0.10.2 torch==2.13.0",
        ),
    ],
    ids=["without torch", "torch from PyTorch's CPU index first"],
)
def test_the_install_cell(packages, cell):
    assert install_cell(REQUIREMENTS, packages) == cell


def test_pytorchs_cpu_index_is_the_one_of_its_install_instructions():
    assert PYTORCH_CPU_INDEX == "https://download.pytorch.org/whl/cpu"


@pytest.mark.parametrize(
    ("metadata", "packages"),
    [
        ({}, []),
        ({"reader_notebook": {}}, []),
        ({"reader_notebook": {"packages": ["sphinx"]}}, ["sphinx"]),
    ],
    ids=["no declaration", "no packages", "one package"],
)
def test_a_page_adds_packages_to_its_install_cell(metadata, packages):
    assert page_packages(metadata) == packages


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"reader_notebook": {"packages": "sphinx"}}, "not 'sphinx'"),
        ({"reader_notebook": {"packages": [1]}}, r"not \[1\]"),
    ],
    ids=["a string", "not names"],
)
def test_a_page_gets_an_error_for_packages_that_are_not_a_list_of_names(metadata, error):
    with pytest.raises(
        ConfigError, match=f"reader_notebook: packages must be a list of distribution names, {error}"
    ):
        page_packages(metadata)


def code_cell(source: str, tags: list[str], error: str | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": tags})
    if error:
        cell.outputs = [nbformat.v4.new_output("error", ename=error, evalue="why", traceback=[])]
    return cell


def executed(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A reader's notebook: the install cell, then the page's cells, whose lines MyST-NB's map gives."""
    install = code_cell("# what the install cell installs is not the point here", ["install-pinned-stack"])
    notebook = nbformat.v4.new_notebook(cells=[install, *cells])
    notebook.metadata["source_map"] = [20 + 10 * number for number in range(len(cells))]
    return notebook


@pytest.mark.parametrize(
    ("cells", "found"),
    [
        ([code_cell("1", [])], None),
        (
            [code_cell("1", []), code_cell("import sphinx", [], "ModuleNotFoundError")],
            "cell 2, line 31 of the page:\nimport sphinx\n-> ModuleNotFoundError: why",
        ),
        ([code_cell("1 / 0", ["raises-exception", "raises:ZeroDivisionError"], "ZeroDivisionError")], None),
        (
            [code_cell("1 / 0", ["raises-exception", "raises:ValueError"], "ZeroDivisionError")],
            "raised ZeroDivisionError, not ValueError",
        ),
        ([code_cell("1", ["raises-exception", "raises:ValueError"])], "ran without raising ValueError"),
        ([code_cell("1 / 0", ["raises-exception"], "ZeroDivisionError")], None),
    ],
    ids=["clean", "unexpected error", "expected error", "another error", "no error", "any error"],
)
def test_the_problem_of_a_run_names_the_cell_and_the_error(cells, found):
    if found is None:
        assert problem(executed(*cells)) is None
    else:
        assert found in problem(executed(*cells))


def test_a_failing_install_cell_is_named_so():
    notebook = executed()
    notebook.cells[0].outputs = [
        nbformat.v4.new_output("error", ename="SyntaxError", evalue="bad", traceback=[])
    ]
    assert problem(notebook).startswith("cell 0, the install cell:")


@pytest.mark.parametrize(
    ("cell_timeout", "timeout", "reason"),
    [
        (5, 60, "CellTimeoutError: A cell timed out while it was being executed, after 5 seconds."),
        (60, 12, "the notebook did not finish in 12 s"),
    ],
    ids=["a cell", "the notebook"],
)
def test_a_run_past_its_time_is_stopped_and_names_the_cell(
    reader_virtualenv, tmp_path, cell_timeout, timeout, reason
):
    notebook = executed(code_cell("1", []), code_cell("import time\ntime.sleep(60)", []))
    nbformat.write(notebook, tmp_path / "hangs.ipynb")
    overlay_virtualenv(tmp_path / "venv", reader_virtualenv)
    found = run(tmp_path / "hangs.ipynb", tmp_path / "venv", tmp_path / "out.ipynb", cell_timeout, timeout)
    assert found == f"cell 2, line 31 of the page:\nimport time\ntime.sleep(60)\n-> {reason}"


@pytest.mark.parametrize("docname", PAGES)
def test_the_downloaded_notebook_runs_top_to_bottom_in_a_new_virtualenv(reader_runs, docname):
    """Errors only in the cells tagged raises-exception, each the exception its raises:<Name> tag names."""
    assert not reader_runs[docname].problem, f"{docname}.ipynb, {reader_runs[docname].problem}"


def test_the_install_cell_gets_pytorchs_cpu_build(reader_virtualenv):
    """The CPU build, from PyTorch's index or, where that cannot be reached (here), from another source:
    no CUDA library is installed either way."""
    python = python_of(reader_virtualenv)
    cuda = subprocess.run(
        [python, "-c", "import torch; print(torch.version.cuda)"], capture_output=True, text=True
    )
    assert cuda.stdout.strip() == "None", cuda.stderr
    listed = subprocess.run([python, "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    assert "nvidia" not in listed.lower()
