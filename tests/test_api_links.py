"""The offline API link table: parse_inventory's rules, and the real api_links.toml."""

import re

import pytest
from api_links import TABLE, InventoryError, load_inventory, parse_inventory  # docs/_ext, via conftest


def test_golden_table():
    table = {
        "jax": {
            "url": "https://docs.jax.dev/en/latest/_autosummary/{name}.html",
            "names": ["jax.jit", "jax.random.key"],
        },
        "optax": {
            "url": "https://optax.readthedocs.io/en/latest/api/{page}.html#{name}",
            "pages": {"optax.sgd": "optimizers", "optax.l2_loss": "losses"},
        },
    }
    assert parse_inventory(table) == {
        "jax.jit": "https://docs.jax.dev/en/latest/_autosummary/jax.jit.html",
        "jax.random.key": "https://docs.jax.dev/en/latest/_autosummary/jax.random.key.html",
        "optax.sgd": "https://optax.readthedocs.io/en/latest/api/optimizers.html#optax.sgd",
        "optax.l2_loss": "https://optax.readthedocs.io/en/latest/api/losses.html#optax.l2_loss",
    }


def test_empty_table():
    assert parse_inventory({}) == {}


NAME_URL = "https://example.org/{name}.html"
PAGE_URL = "https://example.org/{page}.html#{name}"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param({"p": {"names": ["a.b"]}}, "[p] needs a url template", id="missing-url"),
        pytest.param({"p": "https://example.org/{name}"}, "[p] needs a url template", id="not-a-table"),
        pytest.param(
            {"p": {"url": NAME_URL, "names": [], "page": {}, "extra": 1}},
            "[p] has unknown keys: extra, page",
            id="unknown-keys",
        ),
        pytest.param(
            {"p": {"url": "https://example.org/", "names": ["a"]}}, "[p] url has no {name}", id="no-name"
        ),
        pytest.param(
            {"p": {"url": PAGE_URL, "names": ["a.b"]}},
            "[p] url has {page}, so list its names under pages",
            id="names-with-page",
        ),
        pytest.param(
            {"p": {"url": NAME_URL, "pages": {"a.b": "x"}}},
            "[p] lists pages but its url has no {page}",
            id="pages-without-page",
        ),
        pytest.param(
            {"p": {"url": NAME_URL, "names": ["a.b", "a.b"]}}, "a.b is listed twice", id="twice-in-one"
        ),
        pytest.param(
            {"p": {"url": NAME_URL, "names": ["a.b"]}, "q": {"url": PAGE_URL, "pages": {"a.b": "x"}}},
            "a.b is listed twice",
            id="twice-across-tables",
        ),
    ],
)
def test_malformed_table(table, message):
    with pytest.raises(InventoryError, match=f"^{re.escape(message)}$"):
        parse_inventory(table)


def test_real_table_loads():
    urls = load_inventory(TABLE)
    assert urls
    for name, url in urls.items():
        assert url.startswith("https://"), name
        assert not re.search(r"\s", url), name
        assert "{" not in url and "}" not in url, name


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("jax.jit", "https://docs.jax.dev/en/latest/_autosummary/jax.jit.html"),
        (
            "flax.nnx.Module",
            "https://flax.readthedocs.io/en/latest/api_reference/flax.nnx/module.html#flax.nnx.Module",
        ),
        ("optax.sgd", "https://optax.readthedocs.io/en/latest/api/generated/optax.sgd.html"),
        ("torch.nn.Linear", "https://docs.pytorch.org/docs/stable/generated/torch.nn.Linear.html"),
        (
            "torch.nn.Module.state_dict",
            "https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.state_dict",
        ),
        ("print", "https://docs.python.org/3/library/functions.html#print"),
    ],
)
def test_key_names_resolve(name, url):
    assert load_inventory(TABLE)[name] == url
