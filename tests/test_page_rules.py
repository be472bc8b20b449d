"""The house rules of page_rules, on page texts: what passes, and the exact error each fault gets."""

import pytest
from page_rules import check_page

GOOD = """---
kernelspec:
  name: python3
---

(good)=
# A good page

```{code-cell} ipython3
print("runs")
```

```python
>>> 1 + 1
2
```

````markdown
```python
shown as text inside a markdown example
```
````

```bash
nox -s docs
```
"""

UNRUN = (
    "a python code block that nothing runs; make it a {code-cell}, a >>> example "
    "(run by nox -s doctest) or a literalinclude of a tested script in code/"
)
NO_LABEL = "put a '(label)=' target on the line before the page's title"


def test_a_good_page_has_no_problem():
    assert check_page(GOOD) == []


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("(p)=\n# P\n\n```python\nx = 1\n```\n", [(4, UNRUN)]),
        ("(p)=\n# P\n\n```py\nx = 1\n```\n", [(4, UNRUN)]),
        ("(p)=\n# P\n\n~~~python3\nx = 1\n~~~\n", [(4, UNRUN)]),
        ("(p)=\n# P\n\n```{code-block} python\nx = 1\n```\n", [(4, UNRUN)]),
        ("(p)=\n# P\n\n```{code} ipython3\nx = 1\n```\n", [(4, UNRUN)]),
        ("(p)=\n# P\n\n```Python\nx = 1\n```\n\n```python\n>>> 1\n1\n```\n", [(4, UNRUN)]),
        ("# P\n\ntext\n", [(1, NO_LABEL)]),
        ("(p)=\n\ntext\n\n# P\n", [(5, NO_LABEL)]),
        ("(p)=\ntext, no title\n", [(1, "the page has no '# Title' heading")]),
        ("# P\n\n```python\nx = 1\n```\n", [(1, NO_LABEL), (3, UNRUN)]),
    ],
    ids=[
        "python", "py", "tilde-python3", "code-block", "code-ipython3", "one-of-two",
        "no-label", "label-not-next-to-title", "no-title", "two-problems",
    ],
)  # fmt: skip
def test_each_fault_gets_its_message_at_its_line(text, problems):
    assert check_page(text) == problems
