"""The claims of docs/flax-nnx.md, checked in its script and in the rendered page."""

import re

import flax
import jax
import jax.numpy as jnp
import pytest
from conftest import floats_after, import_script, run_script, section
from flax import nnx

PAGE = "flax-nnx"


@pytest.fixture(scope="module")
def script():
    return import_script("flax_nnx")


# -- The script --------------------------------------------------------------------------------


def test_parameters_exist_right_after_construction():
    out = run_script("flax_nnx")
    assert "kernel after construction: Param (4, 16)" in out
    assert "nnx.BatchStat: {'norm': {'mean': (16,), 'var': (16,)}}" in out
    assert "nnx.RngState: {'dropout': {'rngs': {'count': (), 'key': ()}}}" in out


def test_train_and_eval_switch_batchnorm_and_dropout():
    out = section(run_script("flax_nnx"), "train() and eval()")
    assert "after eval(): use_running_average True, deterministic True" in out
    assert "after train(): use_running_average False, deterministic False" in out
    assert "eval outputs repeat exactly: True" in out
    assert "eval leaves BatchStat unchanged: True" in out
    assert "train outputs differ (new dropout masks): True" in out
    assert "train updates BatchStat: True" in out
    assert "nnx.update restores BatchStat: True" in out


def test_nnx_counter_counts_under_nnx_jit():
    out = section(run_script("flax_nnx"), "The Counter revisited")
    jit_part = out.split("nnx counter under nnx.jit")[0]
    assert jit_part.count("count's Python body runs") == 1, "traced once, and still counts"
    assert "nnx counter under nnx.jit: [1, 2, 3]" in out
    assert "counter.count afterwards: 3" in out


def test_plain_jax_jit_silently_drops_the_update_of_a_module_argument():
    out = section(run_script("flax_nnx"), "The Counter revisited")
    assert "leaves of a Counter: 1" in out, "an NNX module is a pytree"
    assert "module as an argument of plain jax.jit: [1, 1, 1]" in out
    assert "its count afterwards: 0" in out


def test_plain_jax_jit_raises_only_when_writing_to_a_captured_module():
    out = run_script("flax_nnx")
    assert "a captured module only read under plain jax.jit: 0, then 0 after set to 10" in out, "frozen"
    assert "plain jax.jit writing to a captured module raises: TraceContextError" in out


def test_returning_the_module_from_plain_jax_jit_keeps_counting_in_a_new_object():
    out = section(run_script("flax_nnx"), "The Counter revisited")
    assert "plain jax.jit returning the module: [1, 2, 3]" in out
    assert "returned count: 3, original's count: 0" in out


def test_tree_mode_writes_back_variables_but_not_mode_switches():
    out = section(run_script("flax_nnx"), "Graph mode and tree mode")
    assert "nnx counter under nnx.jit(graph=False): [1, 2, 3]" in out
    assert "tree mode writes back BatchStat: True" in out
    assert "tree mode writes back the dropout RngCount: 1" in out
    assert "eval() inside nnx.jit({}) leaves the call: True" in out
    assert "eval() inside nnx.jit({'graph_updates': False}) leaves the call: False" in out
    assert "eval() inside nnx.jit({'graph': False}) leaves the call: False" in out
    assert "graph mode runs tied weights: (1, 16)" in out
    assert "tied weights still tied after plain jax.jit: False" in out
    assert "tree mode refuses tied weights: ValueError" in out


def test_split_merge_counter_under_plain_jax_jit():
    out = run_script("flax_nnx")
    assert "split/merge + jax.jit counter: [4, 5, 6]" in out
    assert "counter.count before nnx.update: 3, after: 6" in out, "the object changes only at nnx.update"


def test_merge_of_split_reproduces_outputs():
    out = run_script("flax_nnx")
    assert "merge reproduces outputs: True" in out
    assert "merge of the filtered split reproduces outputs: True" in out
    assert "merge shares the Variable objects: True" in out
    assert "merge with copy=True shares them: False" in out
    assert "split into Param and the rest: ['dense1', 'dense2', 'norm'] ['dropout', 'norm']" in out


def test_nnx_jit_and_split_merge_runs_agree_and_learn():
    out = run_script("flax_nnx")
    nnx_losses = floats_after("nnx.jit loss", out)
    split_losses = floats_after("split/merge loss", out)
    assert len(nnx_losses) == len(split_losses) == 5
    assert nnx_losses[-1] < nnx_losses[0] / 2 and split_losses[-1] < split_losses[0] / 2
    (diff,) = floats_after("max |nnx.jit - split/merge| loss:", out)
    assert diff < 1e-5
    assert "optimizer steps: 100" in out
    accuracies = floats_after("accuracy", out)
    assert len(accuracies) == 2 and accuracies[0] == accuracies[1] > 0.9


def test_linen_and_nnx_losses_differ_but_the_model_is_the_same():
    out = run_script("flax_nnx")
    linen_losses = floats_after("linen loss", out)
    nnx_losses = floats_after("nnx.jit loss", out)
    assert linen_losses != nnx_losses and linen_losses[0] != nnx_losses[0]
    assert linen_losses[-1] < linen_losses[0] / 2
    (diff,) = floats_after("with Linen's initial variables, max |linen - nnx| eval output:", out)
    assert diff < 1e-6


def test_linen_side_is_the_run_of_train_state():
    linen_losses = floats_after("linen loss", run_script("flax_nnx"))
    training = run_script("train_state").split("== Training ==")[1].split("eval after")[0]
    train_state_losses = floats_after("loss", training)
    assert linen_losses == train_state_losses


def test_flax_nnx_trains_on_the_data_of_train_state():
    data_line = "data: 256 examples"
    lines = [
        next(line for line in run_script(name).splitlines() if line.startswith(data_line))
        for name in ("train_state", "flax_nnx")
    ]
    assert lines[0] == lines[1]


def test_functions_are_importable(script):
    _, optimizer, losses = script.train_nnx(num_steps=20)
    _, _, functional_losses = script.train_functional(num_steps=20)
    assert int(optimizer.step[...]) == 20
    assert losses == functional_losses


def test_plain_jax_jit_raises_the_real_error(script):
    with pytest.raises(flax.errors.TraceContextError, match="different trace level"):
        jax.jit(script.Counter().__call__)()


def test_plain_jax_jit_on_a_module_argument_warns_of_nothing(script):
    """The update is lost without an error or a warning (pytest turns any warning into an error)."""
    counter = script.Counter()
    assert script.count_with_plain_jit(counter, 2) == [1, 1]
    assert int(counter.count[...]) == 0


def test_tree_mode_names_the_duplicate_variable(script):
    tied = script.Tied(nnx.Rngs(0))
    with pytest.raises(ValueError, match="Duplicate Param"):
        nnx.jit(lambda m, h: m(h), graph=False)(tied, jnp.ones((1, script.HIDDEN)))


def test_merge_shares_variables_unless_asked_to_copy(script):
    model, x, _ = script.create_model()
    model.eval()
    before = model(x)
    rebuilt = nnx.merge(*nnx.split(model))
    independent = nnx.merge(*nnx.split(model), copy=True)
    assert bool(jnp.array_equal(rebuilt(x), before)) and bool(jnp.array_equal(independent(x), before))
    rebuilt.dense1.kernel[...] = jnp.zeros_like(rebuilt.dense1.kernel[...])
    assert not bool(jnp.array_equal(model(x), before)), "a write through the rebuilt module reaches the model"
    assert bool(jnp.array_equal(independent(x), before)), "the copy=True module has variables of its own"


# -- The rendered page -------------------------------------------------------------------------


def test_page_has_linen_and_nnx_tab_sets_for_the_step_and_the_loop(site):
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    assert len(tab_sets) == 2
    for tab_set in tab_sets:
        labels = [label.get_text(strip=True) for label in tab_set.select("label.sd-tab-label")]
        assert labels == ["Flax Linen", "Flax NNX"]
        assert [label["data-sync-id"] for label in tab_set.select("label.sd-tab-label")] == ["linen", "nnx"]
    step, loop = ([tab.get_text() for tab in tab_set.select("div.sd-tab-content")] for tab_set in tab_sets)
    assert "apply_gradients(grads=grads)" in step[0] and 'mutable=["batch_stats"]' in step[0]
    assert "nnx.Optimizer(" in step[1] and "nnx_model, tx, wrt=nnx.Param" in step[1]
    assert "optimizer.update(model, grads)" in step[1]
    assert "steps taken: 100" in loop[0] and "steps taken: 100" in loop[1]


def test_page_loss_curves_are_the_scripts(site):
    loop = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")[1]
    linen_panel, nnx_panel = (panel.get_text() for panel in loop.select("div.sd-tab-content"))
    out = run_script("flax_nnx")
    assert floats_after("loss", linen_panel) == floats_after("linen loss", out)
    assert floats_after("loss", nnx_panel) == floats_after("nnx.jit loss", out)


def test_page_counter_counts_one_two_three(site):
    body = ["(count's", "Python", "body", "runs)"]
    counted = [*body, "1", "2", "3", "counter.count", "afterwards:", "3"]
    assert counted in [output.split() for output in site.outputs(PAGE)], "traced once, counts under nnx.jit"


def test_page_shows_plain_jax_jit_drop_the_update_silently(site):
    leaves = site.output_with(PAGE, "leaves of a Counter:")
    assert "leaves of a Counter: [Array(0, dtype=int32, weak_type=True)]" in leaves
    silent = site.output_with(PAGE, "[1, 1, 1]").split()
    body = ["(count's", "Python", "body", "runs)"]
    assert silent == [*body, "[1,", "1,", "1]", "counter.count", "afterwards:", "0"]
    assert not any("Warning" in output for output in site.outputs(PAGE))


def test_page_shows_the_errors_of_a_captured_module_and_of_tied_weights_in_tree_mode(site):
    captured, tied = site.soup(PAGE).select("div.cell.tag_raises-exception")
    assert "jax.jit(counter.__call__)()" in captured.select_one("div.cell_input").get_text()
    assert "TraceContextError: Cannot mutate Count from a different trace level" in captured.get_text()
    assert "graph=False)(tied, h)" in tied.select_one("div.cell_input").get_text()
    assert "graph mode: (1, 16)" in tied.get_text()
    assert "still tied after a round trip through plain jax.jit: False" in tied.get_text()
    assert "ValueError: Duplicate Param" in tied.get_text()


def test_page_shows_the_returned_module_counting_in_a_new_object(site):
    out = site.output_with(PAGE, "the same object as before:")
    assert "counter.count afterwards: 3" in out
    assert "the same object as before: False | the original's count: 0" in out


def test_page_shows_what_tree_mode_writes_back(site):
    counts = site.output_with(PAGE, "batch statistics written back:")
    assert "[1, 2, 3] | counter.count afterwards: 3" in counts
    assert "batch statistics written back: True" in counts
    assert "dropout stream's count written back: 1" in counts
    modes = [
        " ".join(line.split()) for line in site.output_with(PAGE, "no graph updates").strip().splitlines()
    ]
    assert modes == [
        "graph, graph updates (default) after the call: use_running_average=True, deterministic=True",
        "graph, no graph updates after the call: use_running_average=False, deterministic=False",
        "tree after the call: use_running_average=False, deterministic=False",
    ]
    frozen = site.output_with(PAGE, "read under jax.jit:")
    assert frozen.split() == "read under jax.jit: 0 after setting the count to 10: 0".split()


def test_page_shows_the_counter_by_hand_with_split_and_merge(site):
    text = site.output_with(PAGE, "counter.count before nnx.update")
    assert text.split() == [
        *"state: {'count': 3}".split(),
        *"(count's Python body runs)".split(),
        "4",
        "5",
        "6",
        *"counter.count before nnx.update: 3".split(),
        *"counter.count after nnx.update: 6".split(),
    ]


def test_page_shows_modes_and_their_effects(site):
    modes = site.output_with(PAGE, "after model.eval():")
    assert "after construction:    use_running_average=False, deterministic=False" in modes
    assert "after model.eval():    use_running_average=True, deterministic=True" in modes
    effects = site.output_with(PAGE, "eval:  outputs repeat exactly")
    assert "eval:  outputs repeat exactly: True" in effects
    assert "eval:  batch statistics changed: False" in effects
    assert "train: outputs repeat exactly: False" in effects
    assert "train: batch statistics changed: True" in effects


def test_page_shows_merge_split_and_the_agreeing_runs(site):
    merged = site.output_with(PAGE, "merge(split(model))")
    assert "merge(split(model)) gives the same outputs: True" in merged
    assert "a new module object: True" in merged
    assert "the same Variable objects: True" in merged
    assert "the same Variable objects with copy=True: False" in merged
    runs = site.output_with(PAGE, "max |nnx.jit - split/merge| loss:")
    assert floats_after("max |nnx.jit - split/merge| loss:", runs) == [0.0]
    assert "trained models agree: True" in runs
    label = "max |Linen - NNX| output:"
    assert floats_after(label, site.output_with(PAGE, label)) == [0.0]


def test_page_prints_no_memory_address(site):
    """A GraphDef's text holds memory addresses; the page never prints one."""
    assert not any(re.search(r"0x[0-9a-f]{6,}", output) for output in site.outputs(PAGE))


def test_page_plot_has_alt_text_that_matches_the_runs(site):
    (image,) = site.soup(PAGE).select("div.cell_output img")
    alt = image.get("alt", "")
    assert "Linen" in alt and "NNX" in alt
    out = run_script("flax_nnx")
    assert f"{floats_after('linen loss', out)[0]:.2f}" in alt
    assert f"{floats_after('nnx.jit loss', out)[0]:.2f}" in alt


def test_page_exercise_counts_forward_passes_with_a_variable_of_its_own(site):
    out = site.output_with(PAGE, "forward passes counted:")
    assert out.split() == [
        *"forward passes counted: 5".split(),
        *"optimizer steps: 5".split(),
        *"Calls state: {'calls': 5}".split(),
        *"Adam keeps moments for: ['dense1', 'dense2', 'norm']".split(),
    ], "the count comes out of nnx.jit, and the optimizer leaves it alone"
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "class Calls(nnx.Variable):" in solution.select_one("div.cell_input").get_text()
