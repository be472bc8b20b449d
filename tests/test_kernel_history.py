"""docs/_ext/kernel_history.py: the kernels of a build, and of the tests, keep no IPython history."""

import os
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel
from kernel_history import ipython_dir_without_history

ASK = "print(get_ipython().history_manager.enabled)"


def kernel_prints(code: str, ipython_dir: Path) -> str:
    """What a new python3 kernel, whose IPython folder is ``ipython_dir``, prints for ``code``."""
    manager, client = start_new_kernel(
        kernel_name="python3", env=dict(os.environ, IPYTHONDIR=str(ipython_dir))
    )
    messages = []
    try:
        reply = client.execute_interactive(code, timeout=60, output_hook=messages.append)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"
    return "".join(message["content"]["text"] for message in messages if message["msg_type"] == "stream")


@pytest.mark.parametrize(
    ("make_folder", "history"),
    [
        (lambda folder: folder, "True"),  # an IPython folder of its own, as a user's: history kept
        (ipython_dir_without_history, "False"),
    ],
)
def test_a_kernel_keeps_history_only_outside_the_extensions_folder(tmp_path, make_folder, history):
    folder = make_folder(tmp_path / "ipython")
    assert kernel_prints(ASK, folder) == f"{history}\n"
    assert bool(list(folder.glob("**/history.sqlite"))) == (history == "True")


def test_the_tests_kernels_use_such_a_folder():
    # conftest's kernels_without_history sets it for the run, as the extension does for a build.
    config = Path(os.environ["IPYTHONDIR"], "profile_default", "ipython_kernel_config.py")
    assert "c.HistoryManager.enabled = False" in config.read_text(encoding="utf8")
