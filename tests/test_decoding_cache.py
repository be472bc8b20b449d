"""The claims of docs/decoding-cache.md, checked in its script and in the rendered page."""

import ast
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import floats_after, import_script, run_script, section
from flax import nnx

PAGE = "decoding-cache"
TOLERANCE = 1e-5
FIXED = (2, 8, 2, 4)  # batch, positions, heads, head dimension


@pytest.fixture(scope="module")
def script():
    return import_script("decoding_cache")


def out(title):
    return section(run_script("decoding_cache"), title)


def literal_after(label, text):
    """The Python literal printed after ``label`` on its line."""
    line = next(line for line in text.splitlines() if line.startswith(label))
    return ast.literal_eval(line[len(label) :].strip())


# -- The script --------------------------------------------------------------------------------


def test_pytorch_cache_is_returned_and_grows():
    text = out("PyTorch")
    assert literal_after("cache shape by step:", text) == [(2, 2, t, 4) for t in range(1, 9)]
    assert "state_dict entries: 12" in text
    assert "cache in state_dict: False" in text
    (diff,) = floats_after("max |stepwise - full|:", text)
    assert diff <= TOLERANCE


def test_linen_cache_collection_fixed_size_index_advances():
    text = out("Linen")
    assert "collections of init(decode=True): ['cache', 'params']" in text
    assert "MultiHeadDotProductAttention has init_cache: False" in text
    assert (
        "cache: {'attn': {'cache_index': (), 'cached_key': (2, 8, 2, 4), 'cached_value': (2, 8, 2, 4)}}"
        in text
    )
    assert literal_after("cache index and shape by step:", text) == [(t, FIXED) for t in range(1, 9)]
    assert "linen step traced: 1 time(s) for 8 tokens" in text
    (diff,) = floats_after("max |stepwise - full|:", text)
    assert diff <= TOLERANCE
    assert "apply without mutable=['cache'] raises: ModifyScopeVariableError" in text


def test_nnx_cache_variables_fixed_size_index_advances():
    text = out("NNX")
    assert "Cache variables before init_cache: []" in text
    assert "attn has cached_key: True and it is None: True" in text
    assert floats_after("NNX with Linen's parameters, full pass, max |NNX - Linen|:", text) == [0.0]
    assert "after init_cache: attn/cache_index Cache ()" in text
    assert "after init_cache: attn/cached_key Cache (2, 8, 2, 4)" in text
    assert "after init_cache: attn/cached_value Cache (2, 8, 2, 4)" in text
    assert "collection name of nnx.Cache: cache" in text
    history = literal_after("cache index, shape and filled slots by step:", text)
    assert history == [(t, FIXED, t) for t in range(1, 9)]
    assert "nnx step traced: 1 time(s) for 8 tokens" in text
    (diff,) = floats_after("max |stepwise - full|:", text)
    assert diff <= TOLERANCE
    assert "split into Param, Cache, rest: 12 3 0" in text


def test_a_growing_cache_is_traced_at_every_step():
    text = out("Why a fixed size")
    assert "growing cache, append traced: 8 time(s) for 8 tokens, final shape (2, 8, 2, 4)" in text


def test_two_silent_caller_mistakes_and_a_view_limitation():
    text = out("Where it goes wrong")
    assert "past the end, NNX: no error, cache_index 9 slots overwritten [7]" in text
    assert "past the end, Linen: no error, cache_index 9 slots overwritten [7]" in text, "the same in Linen"
    assert "nnx.Embed at position 8, all NaN: True" in text
    assert "torch.nn.Embedding at position 8 raises: IndexError" in text
    assert floats_after("is_causal=True, full pass vs mask:", text) == [0.0]
    (wrong,) = floats_after("is_causal=True, decoding vs full:", text)
    assert wrong > 0.1
    assert "PyTorch is_causal=True, 1 query over 8 keys, gives key 0's value: True" in text
    for name in ["cached_key", "cached_value", "cache_index"]:
        assert f"fresh attn has {name}: True value: None" in text
    assert "nnx.view(decode=True, ...): decode True cached_key is None: True" in text
    assert "calling the view raises: ValueError Autoregressive cache not initialized" in text


def test_exercise_greedy_generation_same_with_and_without_cache():
    text = out("Exercise: greedy generation")
    with_cache = literal_after("with the cache:", text)
    without = literal_after("without the cache:", text)
    assert with_cache == without and len(with_cache) == 2 and all(len(row) == 8 for row in with_cache)
    assert "same tokens: True" in text


def test_linen_decode_init_gives_the_params_of_a_plain_init(script):
    """The page runs the full pass with the params from init(decode=True): they are the same arrays."""
    tokens, positions = (jnp.asarray(a) for a in script.make_tokens())
    key = jax.random.key(0)
    plain = script.LinenDecoder().init(key, tokens, positions)["params"]
    decoding = script.LinenDecoder(decode=True).init(key, tokens, positions)["params"]
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), plain, decoding))


@pytest.mark.parametrize("seed", [1, 2])
def test_stepwise_equals_full_on_other_data_and_weights(script, seed):
    """The equality is not a property of one seed: other tokens, other weights."""
    tokens, positions = (jnp.asarray(a) for a in script.make_tokens(seed))
    model = script.Decoder(nnx.Rngs(seed))
    full = script.nnx_full(model, tokens, positions)
    stepwise, history = script.nnx_decode(model, tokens, positions)
    assert float(jnp.abs(stepwise - full).max()) <= TOLERANCE
    assert [index for index, _, _ in history] == list(range(1, 9))
    _, shapes, torch_diff = script.torch_run(np.asarray(tokens), np.asarray(positions))
    assert torch_diff <= TOLERANCE and shapes[-1] == (2, 2, 8, 4)


# -- The rendered page -------------------------------------------------------------------------


def page_text(site):
    """The page's text on one line, with the typographic apostrophes that MyST renders made plain."""
    return " ".join(site.soup(PAGE).get_text().replace("\u2019", "'").split())


def test_page_has_three_framework_tab_sets(site):
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    assert len(tab_sets) == 3
    for tab_set in tab_sets:
        labels = [label.get_text(strip=True) for label in tab_set.select("label.sd-tab-label")]
        assert labels == ["PyTorch", "Flax Linen", "Flax NNX"]


def panels(site, index):
    tab_set = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")[index]
    return [panel.get_text() for panel in tab_set.select("div.sd-tab-content")]


def test_page_decoding_loops_match_the_full_pass(site):
    torch_panel, linen_panel, nnx_panel = panels(site, 1)
    assert re.findall(r"cached keys \((\d), (\d), (\d), (\d)\)", torch_panel) == [
        ("2", "2", str(t), "4") for t in range(1, 9)
    ]
    assert re.findall(r"cache_index (\d), cached_key \(2, 8, 2, 4\)", linen_panel) == [
        str(t) for t in range(1, 9)
    ]
    assert re.findall(r"cache_index (\d), cached_key \(2, 8, 2, 4\), filled (\d)", nnx_panel) == [
        (str(t), str(t)) for t in range(1, 9)
    ]
    for panel in (torch_panel, linen_panel, nnx_panel):
        (diff,) = floats_after("max |stepwise - full|:", panel)
        assert 0 < diff <= TOLERANCE, "within the tolerance, and here not bit-identical, as the page says"
    text = site.soup(PAGE).get_text()
    assert "TOLERANCE = 1e-5" in text
    assert "Here they are not equal to the last bit" in text, "the page says it of this build's outputs"


def test_page_same_weights_in_linen_and_nnx(site):
    text = site.output_with(PAGE, "NNX with Linen's parameters")
    assert floats_after("NNX with Linen's parameters, max |NNX - Linen|:", text) == [0.0]
    _, linen_panel, _ = panels(site, 0)
    assert "collections: ['cache', 'params']" in linen_panel
    assert "MultiHeadDotProductAttention has init_cache: False" in linen_panel
    text = page_text(site)
    assert "Linen's attention has no init_cache" in text


def test_page_steps_traced_once(site):
    growing = site.output_with(PAGE, "append traced:")
    assert "append traced: 8 time(s) for 8 tokens, final shape (2, 8, 2, 4)" in growing
    text = site.output_with(PAGE, "linen_step traced:")
    assert "linen_step traced: 1 time(s) for 8 tokens" in text
    assert "nnx_step traced:   1 time(s) for 8 tokens" in text


def test_page_where_the_cache_lives(site):
    torch_panel, linen_panel, nnx_panel = panels(site, 2)
    assert "state_dict entries: 12" in torch_panel
    assert "any cache among them: False" in torch_panel
    assert "the caller holds: tuple of [(2, 2, 8, 4), (2, 2, 8, 4)]" in torch_panel
    shapes = "{'attn': {'cache_index': (), 'cached_key': (2, 8, 2, 4), 'cached_value': (2, 8, 2, 4)}}"
    assert f"cache collection: {shapes}" in linen_panel
    assert "after decoding, cache_index: 8" in linen_panel
    assert re.search(r"attn/cache_index Cache \(\)", nnx_panel)
    assert re.search(r"attn/cached_key Cache \(2, 8, 2, 4\)", nnx_panel)
    assert "split: Param 12 arrays, Cache 3 arrays, rest 0" in nnx_panel
    assert "collection name of nnx.Cache: cache" in nnx_panel


def test_page_errors(site):
    cells = site.soup(PAGE).select("div.cell.tag_raises-exception")
    texts = [cell.get_text() for cell in cells]
    assert len(texts) == 3
    assert 'ModifyScopeVariableError: Cannot update variable "cached_key"' in texts[0]
    assert 'collection "cache" is immutable' in texts[0]
    assert "IndexError" in texts[1] and "index out of range in self" in texts[1], "PyTorch's Embedding raises"
    assert "ValueError: Autoregressive cache not initialized" in texts[2]


def test_page_where_it_goes_wrong(site):
    past = site.output_with(PAGE, "positions overwritten:").split("\n")
    assert [line.split() for line in past if line] == [
        ["NNX", "cache_index:", "9", "positions", "overwritten:", "[7]"],
        ["Linen", "cache_index:", "9", "positions", "overwritten:", "[7]"],
    ]
    embed = site.output_with(PAGE, "nnx.Embed, position 8:")
    assert re.search(r"nnx\.Embed, position 8: \[\[nan( nan){7}\]\]", embed)
    causal = site.output_with(PAGE, "is_causal vs mask")
    assert floats_after("full pass, is_causal vs mask, max |diff|:", causal) == [0.0]
    (wrong,) = floats_after("decoding with is_causal=True vs full, max |diff|:", causal)
    assert wrong > 0.1
    assert "first step still right: True" in causal
    torch_causal = site.output_with(PAGE, "1 query over 8 keys")
    assert "PyTorch, 1 query over 8 keys, is_causal=True gives key 0's value: True" in torch_causal
    view = site.output_with(PAGE, "hasattr(cached_key):")
    for name in ["cached_key", "cached_value", "cache_index"]:
        assert f"hasattr({name}): True  value: None" in view
    assert "view: decode True  cached_key None" in view
    text = page_text(site)
    assert (
        "Two mistakes a caller can make fail silently, and the first is the same in Linen as in NNX" in text
    )
    assert "The 9th token is given position 0 again" in text
    for wrong in [
        "Three mistakes with NNX's cache",
        "the longest sequence the model accepts",
        "third kind of",
    ]:
        assert wrong not in text


def test_page_exercise(site):
    text = site.output_with(PAGE, "same tokens:")
    assert "same tokens: True" in text
    rows = [line.split(":", 1)[1].strip() for line in text.strip().splitlines()[:2]]
    assert rows[0] == rows[1]
    script_rows = out("Exercise: greedy generation")
    assert rows[0] == str(literal_after("with the cache:", script_rows)), (
        "the page generates what the script does"
    )
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "def generate_with_cache" in solution.get_text()


def test_page_prints_no_memory_address(site):
    assert not any(re.search(r"0x[0-9a-f]{6,}", output) for output in site.outputs(PAGE))
