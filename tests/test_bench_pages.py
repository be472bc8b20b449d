"""tests/bench_pages.py: re-measuring some pages replaces their rows of the status page's table only."""

import pytest
from bench_pages import replace_rows

HEADING = "Measured with ...\n\n| page | KiB | targets |\n| --- | --- | --- |"


@pytest.mark.parametrize(
    ("old_rows", "new_rows", "rows"),
    [
        # a page measured again: its row replaced, in place
        (["| a | 1 | met |", "| b (plots) | 2 | met |"], ["| b (plots) | 3 | MISSED |"],
         ["| a | 1 | met |", "| b (plots) | 3 | MISSED |"]),
        # a new page: its row added in page order
        (["| a | 1 | met |", "| c | 2 | met |"], ["| b | 5 | met |"],
         ["| a | 1 | met |", "| b | 5 | met |", "| c | 2 | met |"]),
        # nothing measured: the table as it was
        (["| a | 1 | met |"], [], ["| a | 1 | met |"]),
    ],
)  # fmt: skip
def test_replace_rows(old_rows, new_rows, rows):
    old = "\n".join([HEADING, *old_rows])
    new = "\n".join([HEADING.replace("...", "again"), *new_rows])
    assert replace_rows(old, new) == "\n".join([HEADING, *rows])
