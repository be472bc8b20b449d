"""Run a reader's notebook as a reader does after "Download .ipynb": top to bottom, in a fresh kernel of a
virtualenv that holds Jupyter's kernel and only what the notebook's own install cell installs.

Every notebook gets a virtualenv of its own, so that what one page's install cell adds (the status page
adds Sphinx) cannot make another page's notebook pass. Installing the whole stack into each would take
minutes a notebook; instead each is a thin virtualenv on top of a shared one (:func:`base_virtualenv`)
that ran the common install cell once: the notebook's install cell then finds the stack installed, and
installs into its own virtualenv only what it adds.

The tests run one process per notebook (``python notebook_runner.py NOTEBOOK OUT TIMEOUT``, in the
environment :func:`run` gives it), so a notebook that hangs can be stopped with its kernel. The pure part
is :func:`problem`: what went wrong in an executed notebook, with the cell and the error.
"""

import json
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

# The local extensions: the worker runs as a script, without conftest's path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))
from strict_execution import check_expected_error  # noqa: E402

KERNEL = "reader"  # the kernel spec each virtualenv gets, which starts its own Python
INSTALL = "install-pinned-stack"  # the tag of the install cell, which reader_notebooks puts first
RUNNING = "running cell "  # what the worker prints before each cell, to name the one that stopped it


def python_of(folder: Path) -> Path:
    return folder / "bin" / "python"


def site_packages(python: Path) -> str:
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return subprocess.run([python, "-c", where], capture_output=True, text=True, check=True).stdout.strip()


def add_kernel(folder: Path) -> None:
    """A kernel spec in the virtualenv's share/jupyter, found through JUPYTER_PATH (see :func:`run`)."""
    spec = folder / "share" / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [str(python_of(folder).absolute()), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )


def base_virtualenv(folder: Path, kernel_packages: list[str], install: str, timeout: int) -> Path:
    """A new virtualenv with Jupyter's kernel (``kernel_packages``, pinned), in which a notebook of the
    one cell ``install`` has run."""
    subprocess.run([sys.executable, "-m", "venv", folder], check=True)
    pip = [python_of(folder), "-m", "pip", "install", "--quiet", *kernel_packages]
    subprocess.run(pip, check=True, capture_output=True, timeout=timeout)
    add_kernel(folder)
    notebook = folder / "install.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(install)]), notebook)
    problem = run(notebook, folder, notebook, cell_timeout=timeout, timeout=timeout)
    if problem:
        raise RuntimeError(f"the install cell, in a new virtualenv: {problem}")
    return folder


def overlay_virtualenv(folder: Path, base: Path) -> None:
    """A new virtualenv that sees the packages of ``base`` behind its own, and installs into its own."""
    venv.create(folder, with_pip=False)  # pip is the base's
    pth = f"import site; site.addsitedir({site_packages(python_of(base))!r})\n"
    Path(site_packages(python_of(folder)), "base_virtualenv.pth").write_text(pth)
    add_kernel(folder)


def run(notebook: Path, virtualenv: Path, out: Path, cell_timeout: int, timeout: int) -> str | None:
    """Execute ``notebook`` in a kernel of ``virtualenv``, from an empty folder, into ``out``; what went
    wrong (the cell and its error, or the time out), or None."""
    workdir = out.parent / f"{out.stem}-cwd"
    workdir.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = f"{virtualenv.absolute() / 'bin'}{os.pathsep}{env['PATH']}"
    env["JUPYTER_PATH"] = str(virtualenv.absolute() / "share" / "jupyter")
    worker = [sys.executable, __file__, notebook.resolve(), out.resolve(), str(cell_timeout)]
    # A session of its own: a notebook past its time is stopped with its kernel.
    with subprocess.Popen(
        worker,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            log = process.communicate(timeout=timeout)[1]
            reason = (log.strip().splitlines() or ["the worker failed"])[-1] if process.returncode else None
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            log, reason = process.communicate()[1], f"the notebook did not finish in {timeout} s"
    running = [int(line.removeprefix(RUNNING)) for line in log.splitlines() if line.startswith(RUNNING)]
    if not running:  # the kernel never started
        return reason or log.strip() or "no cell ran"
    # The worker writes what ran, but not when it is stopped.
    executed = nbformat.read(out if out.is_file() else notebook, as_version=4)
    if reason:  # a cell timed out, the kernel died, or the notebook ran out of time
        return f"{named(executed, running[-1])}\n-> {reason}"
    return problem(executed)


def problem(notebook: nbformat.NotebookNode) -> str | None:
    """The first cell whose outcome is not what its tags say (an error where none is expected, another
    exception than its ``raises:<Name>`` tag, no error where one is), or None."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        errors = [output for output in cell.outputs if output.output_type == "error"]
        tags = cell.metadata.get("tags", [])
        if errors and "raises-exception" not in tags:
            found = f"{errors[0].ename}: {errors[0].evalue}"
        else:
            found = check_expected_error(tags, errors[0].ename if errors else None)
        if found:
            return f"{named(notebook, index)}\n-> {found}"
    return None


def named(notebook: nbformat.NotebookNode, index: int) -> str:
    """The cell, where it starts in the page, and its code. MyST-NB's source map counts the page's cells
    only, not those reader_notebooks adds (each tagged with a tag of its own)."""
    cell = notebook.cells[index]
    if cell.metadata.get("tags") == [INSTALL]:
        return f"cell {index}, the install cell:\n{cell.source}"
    own = [number for number, each in enumerate(notebook.cells) if not is_added(each)]
    lines = notebook.metadata.get("source_map")
    where = f", line {lines[own.index(index)] + 1} of the page" if lines else ""
    return f"cell {index}{where}:\n{cell.source}"


def is_added(cell: nbformat.NotebookNode) -> bool:
    return cell.metadata.get("tags") in ([INSTALL], ["expected-error-note"])


def main(notebook: str, out: str, cell_timeout: str) -> None:
    """Run the notebook as Jupyter's "Run all" does: it stops at the first cell that raises, unless that
    cell is tagged raises-exception; the outputs so far are written either way. A cell that times out, or
    a kernel that dies, ends the worker with one line that says so."""
    executed = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        executed,
        timeout=int(cell_timeout),
        kernel_name=KERNEL,
        on_cell_start=lambda cell, cell_index: print(f"{RUNNING}{cell_index}", file=sys.stderr, flush=True),
    )
    try:
        client.execute()
    except CellExecutionError:
        pass  # the error is the cell's output: problem() reports it
    except (CellTimeoutError, DeadKernelError) as error:
        sys.exit(f"{type(error).__name__}: {str(error).splitlines()[0]}")
    finally:
        nbformat.write(executed, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
