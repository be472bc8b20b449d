"""The pages' kernels keep no IPython history.

Every IPython kernel writes the code it runs into one history database, ``history.sqlite`` in the
user's IPython folder, shared by all the user's kernels. Kernels that run at the same time
(``sphinx-build -j auto`` executes pages in parallel; the tests run builds and readers' notebooks side by
side) can be given the same session number, and the one that loses prints ``ERROR! Session/line number
was not unique in database`` to its standard output: into the output of the cell it is running, on the
page. The pages need no history, so their kernels keep none.

Usage: add ``"kernel_history"`` to ``extensions``. At setup it points ``IPYTHONDIR``, which the kernels
inherit, at a new temporary folder made by :func:`ipython_dir_without_history`; the tests use that
function for the kernels they start themselves.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

KERNEL_CONFIG = "c.HistoryManager.enabled = False  # written by docs/_ext/kernel_history.py\n"


def ipython_dir_without_history(folder: Path) -> Path:
    """``folder`` as an IPython folder whose kernels keep no history (it must be empty or new)."""
    profile = folder / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG, encoding="utf8")
    return folder


def setup(app):
    folder = Path(tempfile.mkdtemp(prefix="ipython-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["IPYTHONDIR"] = str(ipython_dir_without_history(folder))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
