"""The claims of docs/randomness.md, checked in its script and in the rendered page."""

import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import import_script, run_script, section
from flax import nnx

PAGE = "randomness"


@pytest.fixture(scope="module")
def script():
    return import_script("randomness")


def out(title):
    return section(run_script("randomness"), title)


def rows_after(label, text):
    """The mask rows ("  member 0: 0110...") printed right after the line that starts with ``label``."""
    lines = text.split(label, 1)[1].splitlines()[1:]
    rows = []
    for line in lines:
        match = re.fullmatch(r"\s+(?:member|layer) \d+: ([01]+)", line)
        if not match:
            break
        rows.append(match.group(1))
    return rows


# -- The script: PyTorch's global generator -----------------------------------------------------


def test_numpy_offers_an_explicit_and_a_global_generator():
    text = out("PyTorch's global generator")
    assert "NumPy, explicit Generator: Generator 0.636962" in text
    assert "NumPy, global generator:   0.548814" in text


def test_get_rng_state_holds_the_seed_and_a_position():
    text = out("PyTorch's global generator")
    assert "get_rng_state(): torch.uint8 (5056,)" in text
    assert "its first 8 bytes, as an integer: 1234" in text
    assert "torch.initial_seed(): 1234" in text
    assert "after one torch.rand(1): state changed: True" in text
    assert "  first 8 bytes still: 1234" in text


def test_get_rng_state_is_the_cpu_generator_and_cuda_has_its_own():
    text = out("PyTorch's global generator")
    note = ".. note:: The returned state is for the default generator on CPU only."
    assert f"get_rng_state's docstring: {note}" in text
    assert "torch.cuda.get_rng_state_all exists: True" in text


def test_dropout_draws_from_the_global_generator_and_holds_nothing():
    text = out("PyTorch's global generator")
    assert "Dropout, two calls: different masks: True" in text
    assert "Dropout, reseeded: the first mask again: True" in text
    assert "Dropout after one torch.rand(1): mask changed: True" in text
    assert "Dropout's state_dict: {}" in text


def test_an_explicit_generator_leaves_the_global_one_and_dropout_takes_none():
    text = out("PyTorch's global generator")
    assert "randn(generator=g) leaves the global state alone: True" in text
    assert "nn.Dropout has a generator argument: False" in text
    assert "F.dropout has a generator argument: False" in text


def test_dropout_really_follows_the_global_state():
    """Independently of the script: restoring the global state replays a Dropout mask."""
    dropout = torch.nn.Dropout(0.5)
    saved = torch.get_rng_state()
    first = dropout(torch.ones(64)) != 0
    torch.set_rng_state(saved)
    assert torch.equal(first, dropout(torch.ones(64)) != 0)


# -- The script: JAX keys ------------------------------------------------------------------------


def test_typed_and_legacy_keys():
    text = out("JAX keys")
    assert "jax.random.key(0):      key<fry> ()" in text
    assert "jax.random.PRNGKey(0):  uint32 (2,)" in text
    assert "same bits: True" in text
    assert "same numbers: True" in text
    assert "legacy key + 1: [1 1]" in text, "arithmetic on a legacy key makes another key"
    assert "typed key + 1: TypeError: add does not accept dtypes key<fry>, int32." in text


def test_keys_are_values():
    text = out("JAX keys")
    for line in [
        "the same key twice, the same numbers: True",
        "the key after drawing is unchanged: True",
        "split: two new keys, different: True",
        "fold_in(key, step) for steps 0-2, all different: True",
        "fold_in(key, 1) again gives step 1's key: True",
        "jax.experimental.random.stateful_rng(0): two .key() calls, different keys: True",
    ]:
        assert line in text


def test_error_of_fails_when_nothing_is_raised(script):
    with pytest.raises(AssertionError, match="raised nothing"):
        script.error_of(lambda: None)


# -- The script: keys inside a model -------------------------------------------------------------


def test_no_random_state_in_pytorch_or_linen_variables():
    text = out("Keys inside a model")
    assert "PyTorch state_dict keys: ['dense1.weight', 'dense1.bias', 'dense2.weight', 'dense2.bias']" in text
    assert "Linen init returns: ['params']" in text


def test_linen_keys_follow_the_layer_not_the_order():
    text = out("Keys inside a model")
    assert "make_rng twice in layer a: different keys: True" in text
    assert "layers a and b: different keys: True" in text
    assert "layer a called after b: the same key: True" in text
    assert "apply again with the same key: the same key: True" in text


def test_linen_make_rng_falls_back_to_the_params_key():
    assert "only a 'params' key: make_rng('dropout') falls back to it: True" in out("Keys inside a model")


def test_linen_unnamed_inline_layers_are_named_and_keyed_in_call_order():
    text = out("Keys inside a model")
    assert "inline Dropouts, unnamed: drop_a, drop_b are Dropout_0 Dropout_1" in text
    assert "  drop_b called first: drop_a, drop_b are Dropout_1 Dropout_0" in text
    assert "  drop_b called first: masks identical False" in text
    assert "  drop_a called second got drop_b's mask: True" in text


def test_linen_inline_order_swaps_masks_independently(script):
    """With another key and batch: the masks follow the auto-names, so the order of creation."""
    h = jnp.ones((3, script.HIDDEN))
    key = jax.random.key(42)
    masks, names = script.InlineNet().apply({}, h, rngs={"dropout": key})
    swapped, swapped_names = script.InlineNet(b_first=True).apply({}, h, rngs={"dropout": key})
    assert names == ("Dropout_0", "Dropout_1") and swapped_names == ("Dropout_1", "Dropout_0")
    assert np.array_equal(swapped[0], masks[1]) and np.array_equal(swapped[1], masks[0])
    assert not np.array_equal(masks[0], masks[1])


def test_nnx_streams_count_and_fold_in():
    text = out("Keys inside a model")
    assert "rngs.dropout: RngStream key key<fry> count 0" in text
    assert "after two rngs.dropout() calls, count: 2" in text
    assert "they were fold_in(key(1), 0) and fold_in(key(1), 1): True True" in text


def test_nnx_dropout_layers_fork_their_own_streams_into_the_state():
    text = out("Keys inside a model")
    assert "rngs.dropout count after building NNXNet: 2" in text
    listing = [line.split() for line in text.splitlines() if line.startswith("  drop_") and "/rngs/" in line]
    assert listing == [
        ["drop_a/rngs/count", "RngCount", "uint32"],
        ["drop_a/rngs/key", "RngKey", "key<fry>"],
        ["drop_b/rngs/count", "RngCount", "uint32"],
        ["drop_b/rngs/key", "RngKey", "key<fry>"],
    ]
    assert "drop_a's key is fold_in(key(1), 0): True" in text
    assert "drop_b's key is fold_in(key(1), 1): True" in text
    assert "counts after two calls: {'drop_a': 2, 'drop_b': 2}" in text


# -- The script: reproducibility -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["PyTorch", "Linen", "NNX"])
def test_same_seed_twice_is_bit_identical(name):
    text = out("Reproducibility")
    assert f"{name} same seed twice: masks identical True, losses identical True" in text
    line = next(line for line in text.splitlines() if line.startswith(f"{name} losses:"))
    values = [float(value) for value in line.split(":")[1].split()]
    assert len(values) == 3 and all(0.3 < value < 1.5 for value in values)


def test_pytorch_masks_follow_the_order_of_calls():
    text = out("Reproducibility")
    assert "PyTorch drop_b called first: masks identical False, losses identical False" in text
    assert "PyTorch drop_a called second got drop_b's masks: True" in text


@pytest.mark.parametrize("name", ["Linen", "NNX"])
def test_jax_masks_do_not_follow_the_order_of_calls(name):
    text = out("Reproducibility")
    assert f"{name} drop_b called first: masks identical True, losses identical True" in text
    assert f"{name} drop_a called second got drop_b's masks: False" in text


@pytest.mark.parametrize("b_first", [False, True])
def test_nnx_dropout_layers_count_their_own_keys_in_either_order(b_first):
    text = out("Reproducibility")
    assert f"NNX counts after 3 steps, b_first={b_first}: {{'drop_a': 3, 'drop_b': 3}}" in text


@pytest.mark.parametrize("name", ["PyTorch", "Linen", "NNX"])
def test_losses_are_printed_with_four_decimals(name):
    line = next(line for line in out("Reproducibility").splitlines() if line.startswith(f"{name} losses:"))
    assert re.fullmatch(rf"{name} losses:( \d\.\d{{4}}){{3}}", line), line


def test_runs_are_importable_and_agree_with_the_printed_claims(script):
    masks, losses = script.torch_run(0)
    masks_again, losses_again = script.torch_run(0)
    assert np.array_equal(masks, masks_again) and losses == losses_again
    other, _ = script.torch_run(1)
    assert not np.array_equal(masks, other), "a different seed gives other masks"
    assert masks.shape == (script.NUM_STEPS, 2, script.NUM_EXAMPLES, script.HIDDEN)
    assert 0.3 < masks.mean() < 0.7, "about half the units kept at rate 0.5"
    model, nnx_masks, _ = script.nnx_train(0)
    b_first_masks, _ = script.nnx_run(0, b_first=True)
    assert np.array_equal(nnx_masks, b_first_masks)
    assert int(model.drop_a.rngs.count[...]) == int(model.drop_b.rngs.count[...]) == script.NUM_STEPS


# -- The script: vmap ----------------------------------------------------------------------------


def test_jax_vmap_broadcast_key_gives_identical_masks_split_keys_do_not():
    text = out("vmap: an ensemble")
    label = "jax.vmap, one key for all (in_axes None): masks identical: True"
    rows = rows_after(label, text)
    assert len(rows) == 4 and len(set(rows)) == 1
    rows_closed = rows_after("jax.vmap, key closed over (default in_axes): masks identical: True", text)
    assert rows_closed == rows, "a key closed over is the same key for all: the broadcast's masks"
    rows = rows_after("jax.vmap, split keys: masks all different: True", text)
    assert len(rows) == 4 and len(set(rows)) == 4
    error = "ValueError: vmap was requested to map its argument along axis 0"
    assert f"jax.vmap, one key mapped over axis 0: {error}" in text


def test_torch_func_vmap_refuses_randomness_by_default():
    text = out("vmap: an ensemble")
    assert "torch.func.vmap, default randomness: RuntimeError: vmap: called random operation" in text
    assert "torch.func.vmap randomness='same': masks identical: True" in text
    assert "torch.func.vmap randomness='different': masks all different: True" in text


def test_linen_vmap_split_rngs():
    text = out("vmap: an ensemble")
    broadcast = text.split("nn.vmap split_rngs={'params': True, 'dropout': False}:")[1]
    assert broadcast.startswith("\n  kernels all different True\n  masks identical True\n")
    rows = rows_after("  masks identical True", broadcast)
    assert len(rows) == 4 and len(set(rows)) == 1
    split = text.split("nn.vmap split_rngs={'params': True, 'dropout': True}:")[1]
    assert split.startswith("\n  kernels all different True\n  masks identical False\n")
    rows = rows_after("  masks identical False", split)
    assert len(rows) == 4 and len(set(rows)) == 4
    assert (
        "nn.vmap split_rngs={'params': True}, only a dropout key: InvalidRngError: Dropout_0 needs PRNG for"
        ' "dropout"' in text
    )


def test_linen_vmap_without_the_dropout_stream_falls_back_to_params():
    text = out("vmap: an ensemble")
    assert "  with a params key too: no error, masks all different: True" in text
    assert "  dropout key 1 or 99: the same masks: True" in text
    assert "  the params key alone: the same masks: True" in text


def test_linen_vmap_fallback_independently(script):
    """Another params key changes the masks; another dropout key does not."""
    x = jnp.ones(script.IN_FEATURES)
    ensemble = script.linen_ensemble({"params": True})
    variables = ensemble.init(jax.random.key(0), x)

    def masks(params, dropout):
        rngs = {"params": jax.random.key(params), "dropout": jax.random.key(dropout)}
        return np.asarray(ensemble.apply(variables, x, rngs=rngs) != 0)

    assert np.array_equal(masks(3, 1), masks(3, 2))
    assert not np.array_equal(masks(3, 1), masks(4, 1))


def test_nnx_vmap_split_and_shared_streams():
    text = out("vmap: an ensemble")
    assert "nnx.vmap, an unsplit Rngs on the default in_axes=0: ValueError: vmap was requested" in text
    assert "nnx.vmap, a model closed over: TraceContextError: Cannot mutate RngCount" in text
    label = "nnx.vmap, in_axes=None on the model: masks identical: True count: 1"
    rows = rows_after(label, text)
    assert len(rows) == 4 and len(set(rows)) == 1
    label = "nnx split_rngs(splits=4): dropout key shape (4,) masks all different: True"
    rows = rows_after(label, text)
    assert len(rows) == 4 and len(set(rows)) == 4
    label = (
        "nnx split_rngs(only='params'): dropout key shape () masks identical: True"
        " kernels all different: True"
    )
    rows = rows_after(label, text)
    assert len(rows) == 4 and len(set(rows)) == 1
    assert "  the shared stream's count after one call: 1" in text


def test_nnx_shared_stream_under_vmap_gives_every_member_one_mask(script):
    x = jnp.ones(script.IN_FEATURES)
    shared = script.make_shared_ensemble(nnx.Rngs(params=3, dropout=4))
    masks = np.asarray(script.shared_forward(shared, x) != 0)
    assert all((mask == masks[0]).all() for mask in masks)
    split = script.make_ensemble(nnx.Rngs(params=3, dropout=4))
    masks = np.asarray(script.ensemble_forward(split, x) != 0)
    assert len({mask.tobytes() for mask in masks}) == script.MEMBERS


# -- The script: scan ----------------------------------------------------------------------------


def test_jax_lax_scan_closed_over_key_repeats_split_keys_do_not():
    text = out("scan: a stack of layers")
    rows = rows_after("jax.lax.scan, key closed over: masks identical: True", text)
    assert len(rows) == 3 and len(set(rows)) == 1
    rows = rows_after("jax.lax.scan, split keys as xs: masks all different: True", text)
    assert len(rows) == 3 and len(set(rows)) == 3


def test_linen_scan_split_rngs():
    text = out("scan: a stack of layers")
    broadcast = text.split("nn.scan split_rngs={'params': True, 'dropout': False}:")[1]
    rows = rows_after("  masks identical True", broadcast)
    assert len(rows) == 3 and len(set(rows)) == 1
    split = text.split("nn.scan split_rngs={'params': True, 'dropout': True}:")[1]
    rows = rows_after("  masks identical False", split)
    assert len(rows) == 3 and len(set(rows)) == 3


def test_nnx_scan_split_stream_advances():
    text = out("scan: a stack of layers")
    rows = rows_after("nnx split_rngs(splits=3): dropout key shape (3,) masks all different: True", text)
    assert len(rows) == 3 and len(set(rows)) == 3
    assert "  next call, new masks: True counts: [2, 2, 2]" in text


def test_nnx_scan_broadcast_stream_repeats_and_does_not_advance():
    text = out("scan: a stack of layers")
    rows = rows_after("nnx shared stream under nnx.scan, default modes: masks identical: True count: 0", text)
    assert len(rows) == 3 and len(set(rows)) == 1
    assert "  next call, the same masks again: True count: 0" in text


@pytest.mark.parametrize("modes", ["graph=False graph_updates=True", "graph=True graph_updates=False"])
def test_nnx_scan_with_either_mode_off_carries_the_broadcast_stream(modes):
    text = out("scan: a stack of layers")
    rows = rows_after(f"nnx shared stream, {modes}: masks all different: True count: 3", text)
    assert len(rows) == 3 and len(set(rows)) == 3


def test_nnx_scan_broadcast_stream_independently(script):
    """Graph mode: a broadcast stream's count is not written back, whatever the seed."""
    h0 = jnp.ones(script.HIDDEN)
    shared = script.make_shared_stack(nnx.Rngs(params=5, dropout=6))
    _, first = script.run_shared_stack(h0, shared)
    _, second = script.run_shared_stack(h0, shared)
    assert np.array_equal(first, second) and int(shared.dropout.rngs.count[...]) == 0
    for graph, graph_updates in [(False, True), (True, False)]:
        shared = script.make_shared_stack(nnx.Rngs(params=5, dropout=6))
        _, carried = script.run_shared_stack_with_prefix(shared, h0, graph, graph_updates)
        assert int(shared.dropout.rngs.count[...]) == script.LAYERS
        assert not np.array_equal(carried[0], carried[1])


# -- The script: saving, exercise ----------------------------------------------------------------


def test_restoring_the_random_state_replays_the_masks():
    text = out("Saving random state")
    assert "PyTorch, after set_rng_state (CPU generator): the same masks: True" in text
    label = "Linen, key rebuilt from the saved key data and step 2: the run's masks at step 2: True"
    assert label in text
    assert "  the rebuilt key with step 1: other masks: True" in text
    assert "NNX, after nnx.update with the saved RngState: the same masks: True" in text
    assert "  the next call, not restored: other masks: True" in text
    assert "NNX, nnx.state(model) holds the RngState too: True" in text


def test_linen_saved_key_data_and_step_replay_every_step_of_the_run(script):
    """The key's raw data through an .npz file and back, for each step of linen_run(0)."""
    x, _ = script.make_data()
    init_key, dropout_key = jax.random.split(jax.random.key(0))
    file = io.BytesIO()
    np.savez(file, dropout_key=np.asarray(jax.random.key_data(dropout_key)))
    file.seek(0)
    restored = jax.random.wrap_key_data(np.load(file)["dropout_key"])
    variables = script.LinenNet().init(init_key, x, train=False)
    run_masks, _ = script.linen_run(0)
    for step in range(script.NUM_STEPS):
        rngs = {"dropout": jax.random.fold_in(restored, step)}
        _, masks = script.LinenNet().apply(variables, x, train=True, rngs=rngs)
        assert np.array_equal(masks, run_masks[step])
        assert step == 0 or not np.array_equal(run_masks[step], run_masks[step - 1])


def test_nnx_restore_is_needed_to_replay(script):
    """Without nnx.update the next call draws other masks: the state really moved."""
    x, _ = script.make_data()
    model = script.NNXNet(nnx.Rngs(params=0, dropout=1))
    _, first = model(x)
    _, second = model(x)
    assert not np.array_equal(first, second)


def test_exercise_solution_in_the_script():
    text = out("Exercise: a key per member with fold_in")
    assert "masks all different: True" in text
    assert "member 2 equals fold_in(key, 2) outside vmap: True" in text
    rows = rows_after("member 2 equals fold_in(key, 2) outside vmap: True", text)
    assert len(rows) == 4 and len(set(rows)) == 4


def test_fold_in_per_member_matches_outside_vmap(script):
    key = jax.random.key(7)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(3))
    assert script.same_key(keys[1], jax.random.fold_in(key, 1))


# -- The rendered page ---------------------------------------------------------------------------


def test_page_tab_sets(site):
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    labels = [
        [label.get_text(strip=True) for label in tab_set.select("label.sd-tab-label")] for tab_set in tab_sets
    ]
    three = ["PyTorch", "Flax Linen", "Flax NNX"]
    assert labels == [three, three, three, ["Flax Linen", "Flax NNX"], three]


def test_every_line_the_page_prints_is_a_line_of_the_script(site):
    script_lines = {line.strip() for line in run_script("randomness").splitlines()}
    for output in site.outputs(PAGE):
        for line in output.strip().splitlines():
            assert line.strip() in script_lines, line


def test_page_shows_the_claims_of_each_section(site):
    checks = [
        "Dropout after one torch.rand(1): mask changed: True",
        "typed key + 1: TypeError: add does not accept dtypes key<fry>, int32.",
        "get_rng_state's docstring: .. note:: The returned state is for the default generator on CPU only.",
        "jax.experimental.random.stateful_rng(0): two .key() calls, different keys: True",
        "layer a called after b: the same key: True",
        "only a 'params' key: make_rng('dropout') falls back to it: True",
        "  drop_b called first: drop_a, drop_b are Dropout_1 Dropout_0",
        "  drop_a called second got drop_b's mask: True",
        "counts after two calls: {'drop_a': 2, 'drop_b': 2}",
        "PyTorch drop_a called second got drop_b's masks: True",
        "Linen drop_b called first: masks identical True, losses identical True",
        "NNX counts after 3 steps, b_first=False: {'drop_a': 3, 'drop_b': 3}",
        "NNX counts after 3 steps, b_first=True: {'drop_a': 3, 'drop_b': 3}",
        "jax.vmap, key closed over (default in_axes): masks identical: True",
        "torch.func.vmap, default randomness: RuntimeError",
        "nn.vmap split_rngs={'params': True}, only a dropout key: InvalidRngError",
        "  dropout key 1 or 99: the same masks: True",
        "nnx.vmap, an unsplit Rngs on the default in_axes=0: ValueError",
        "nnx.vmap, a model closed over: TraceContextError",
        "nnx.vmap, in_axes=None on the model: masks identical: True count: 1",
        "  the shared stream's count after one call: 1",
        "jax.lax.scan, key closed over: masks identical: True",
        "nnx shared stream under nnx.scan, default modes: masks identical: True count: 0",
        "  next call, the same masks again: True count: 0",
        "nnx shared stream, graph=False graph_updates=True: masks all different: True count: 3",
        "nnx shared stream, graph=True graph_updates=False: masks all different: True count: 3",
        "PyTorch, after set_rng_state (CPU generator): the same masks: True",
        "Linen, key rebuilt from the saved key data and step 2: the run's masks at step 2: True",
        "NNX, after nnx.update with the saved RngState: the same masks: True",
        "  the next call, not restored: other masks: True",
    ]
    for text in checks:
        assert text in site.output_with(PAGE, text)


def test_page_same_seed_is_bit_identical_in_each_tab(site):
    (tab_set,) = [
        tab_set
        for tab_set in site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
        if "same seed twice" in tab_set.get_text()
    ]
    panels = [panel.get_text() for panel in tab_set.select("div.sd-tab-content")]
    for name, panel in zip(["PyTorch", "Linen", "NNX"], panels, strict=True):
        assert f"{name} same seed twice: masks identical True, losses identical True" in panel


def test_page_broadcast_masks_are_shown_identical(site):
    text = site.output_with(PAGE, "jax.vmap, one key for all")
    rows = rows_after("jax.vmap, one key for all (in_axes None): masks identical: True", text)
    assert len(rows) == 4 and len(set(rows)) == 1
    closed = rows_after("jax.vmap, key closed over (default in_axes): masks identical: True", text)
    assert closed == rows


def test_page_scan_masks_shown(site):
    text = site.output_with(PAGE, "jax.lax.scan, key closed over")
    rows = rows_after("jax.lax.scan, key closed over: masks identical: True", text)
    assert len(rows) == 3 and len(set(rows)) == 1
    text = site.output_with(PAGE, "nnx shared stream, graph=True graph_updates=False")
    for modes in ["graph=False graph_updates=True", "graph=True graph_updates=False"]:
        rows = rows_after(f"nnx shared stream, {modes}: masks all different: True count: 3", text)
        assert len(rows) == 3 and len(set(rows)) == 3


def test_page_prose_states_the_corrected_claims(site):
    """The claims the review found too broad are stated with their conditions."""
    text = " ".join(site.soup(PAGE).select_one("article").get_text().split())
    for wrong in [
        "no transform shares a key by default",
        "each transform left to itself refuses to share a key",
        "passes a stream into the members only if",
        "A broadcast stream gives every layer the same mask",
        "JAX has no such object",
    ]:
        assert wrong not in text, wrong
    for right in [
        "A key that the mapped function closes over is not an argument of vmap at all",
        "falls back to the params stream",
        "graph=True and graph_updates=True",
        "in the order they are created",
        "the CPU default generator",
        "torch.cuda.get_rng_state_all",
        "which carries a broadcast stream from layer to layer",
        "only when apply has no params key",
    ]:
        assert right in text, right


def test_page_links_to_the_checkpoints_page(site):
    links = [a.get("href", "") for a in site.soup(PAGE).select("a.reference.internal")]
    assert any(link.startswith("checkpoints.html") for link in links)


def test_page_exercise_solution_is_hidden_executed_and_asserted(site):
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    source = solution.select_one("div.cell_input").get_text()
    assert "jax.random.fold_in(key, index)" in source and "assert " in source
    output = solution.select_one("div.cell_output").get_text()
    assert "masks all different: True" in output
    assert "member 2 equals fold_in(key, 2) outside vmap: True" in output


def test_page_prints_no_path_or_address(site):
    for output in site.outputs(PAGE):
        assert "site-packages" not in output and "/tmp" not in output and "/work" not in output
        assert not re.search(r"0x[0-9a-f]{6,}", output)
