"""The claims of docs/intermediates.md, checked in its script and in the rendered page."""

import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import floats_after, import_script, run_script, section
from flax import linen as nn
from flax import nnx

PAGE = "intermediates"
TOLERANCE = 1e-6
LINEN_ALL = (
    "{'intermediates': {'__call__': ((6, 3),), 'dense1': {'__call__': ((6, 8),)}, "
    "'dense2': {'__call__': ((6, 3),)}, 'hidden': ((6, 8),)}}"
)
LINEN_FILTERED = "{'intermediates': {'dense1': {'__call__': ((6, 8),)}, 'hidden': ((6, 8),)}}"
NNX_METHODS = "{'__call__': ((6, 3),), 'dense1': {'__call__': ((6, 8),)}, 'dense2': {'__call__': ((6, 3),)}, 'hidden': ((6, 8),)}"  # noqa: E501
# A subclass that inherits __call__ and defines logits (which calls _scores): no top-level __call__.
SUBCLASS_METHODS = "{'dense1': {'__call__': ((6, 8),)}, 'dense2': {'__call__': ((6, 3),)}, 'hidden': ((6, 8),), 'logits': ((6, 3),)}"  # noqa: E501
SOW_DEPRECATION = "Using 'Module.sow()' outside of 'nnx.capture()' is deprecated"
# The jaxpr lines: (program, equations, outputs, same equations as without sow, same jaxpr).
LINEN_PROGRAMS = [
    ("no sow in the model", 7, 1, True, True),
    ("sow, not requested", 7, 1, True, True),
    ('mutable=["intermediates"]', 7, 2, True, False),
    ("capture_intermediates=True", 7, 5, True, False),
]
NNX_PROGRAMS = [
    ("no sow in the model", 7, 1, True, True),
    ("nnx.capture(model)", 7, 1, True, True),
    ("nnx.capture(model, nnx.Intermediate)", 7, 2, True, False),
    ("method_outputs=nnx.Intermediate", 7, 4, True, False),
]


@pytest.fixture(scope="module")
def script():
    return import_script("intermediates")


@pytest.fixture(scope="module")
def models(script):
    return script.make_models()


def jaxpr_lines(programs):
    return [
        f"{name:38} equations {eqns}, outputs {outs}, same equations: {same_eqns}, same jaxpr: {same}"
        for name, eqns, outs, same_eqns, same in programs
    ]


# -- The script --------------------------------------------------------------------------------


def test_copied_weights_give_the_same_outputs():
    out = section(run_script("intermediates"), "The network")
    (linen,) = floats_after("max |Linen - PyTorch| output:", out)
    (nnx_diff,) = floats_after("max |NNX - PyTorch| output:", out)
    assert linen <= TOLERANCE and nnx_diff <= TOLERANCE
    assert "'kernel': (4, 8)" in out, "kernel = weight.T: (in, out)"


def test_hook_records_dense1_until_its_handle_removes_it():
    out = section(run_script("intermediates"), "A layer's output")
    assert "register_forward_hook returns: RemovableHandle" in out
    assert "PyTorch hook recorded dense1: (6, 8)" in out
    assert "recorded after handle.remove(): {}" in out


def test_capture_intermediates_records_every_call_and_the_filter_keeps_dense1():
    out = section(run_script("intermediates"), "A layer's output")
    assert f"Linen capture_intermediates=True: {LINEN_ALL}" in out
    assert f"Linen capture_intermediates=only_dense1: {LINEN_FILTERED}" in out, "the sown hidden is kept too"


def test_nnx_method_outputs_records_every_call_as_intermediate_variables():
    out = section(run_script("intermediates"), "A layer's output")
    assert f"NNX method_outputs=nnx.Intermediate: {NNX_METHODS}" in out
    assert "NNX recorded type: Intermediate" in out
    assert "nnx.capture's parameters: ['fn', 'var_types', 'init', 'method_outputs']" in out, "no filter"


def test_method_outputs_records_only_methods_each_class_defines_and_patches_the_classes_during_the_call():
    out = section(run_script("intermediates"), "A layer's output")
    assert f"NNX method_outputs, a subclass called through logits: {SUBCLASS_METHODS}" in out
    assert "NNXMLP.__call__ is the original during the call: False | after it: True" in out


def method_output_keys(model, call=lambda model, x: model(x)):
    capture = nnx.capture(call, nnx.Intermediate, method_outputs=nnx.Intermediate)
    _, recorded = capture(model, jnp.ones((2, 4)))
    return jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(recorded))[0]


def test_method_outputs_skips_inherited_methods_of_models_and_layers(script):
    """The rule in general: a subclass that adds nothing records nothing of its own, for a layer too."""

    class Plain(script.NNXMLP):
        pass

    class MyLinear(nnx.Linear):
        pass

    class Wrapper(nnx.Module):
        def __init__(self, rngs, with_linear):
            self.inner = MyLinear(4, 3, rngs=rngs)
            self.linear = nnx.Linear(4, 3, rngs=rngs) if with_linear else None

        def __call__(self, x):
            return self.inner(x) if self.linear is None else self.inner(x) + self.linear(x)

    def recorded(model):
        return {jax.tree_util.keystr(path[:-1]) for path, _ in method_output_keys(model)}

    assert recorded(Plain(nnx.Rngs(0))) == {"['dense1']['__call__']", "['dense2']['__call__']", "['hidden']"}
    assert recorded(Wrapper(nnx.Rngs(0), with_linear=False)) == {"['__call__']"}, "MyLinear's is inherited"
    # The rule is per class of each module: once an nnx.Linear in the model gets nnx.Linear.__call__ wrapped,
    # MyLinear, which inherits that very function, records too (why the page states the rule per class).
    both = {"['__call__']", "['inner']['__call__']", "['linear']['__call__']"}
    assert recorded(Wrapper(nnx.Rngs(0), with_linear=True)) == both
    subclass = script.Subclass(nnx.Rngs(0))
    keys = {jax.tree_util.keystr(p[:-1]) for p, _ in method_output_keys(subclass, lambda m, x: m.logits(x))}
    assert "['logits']" in keys and "['_scores']" not in keys, "public methods yes, private ones no"


def test_method_outputs_wraps_the_classes_only_while_the_call_runs(script):
    model = script.NNXMLP(nnx.Rngs(0))
    originals = {cls: cls.__dict__["__call__"] for cls in (script.NNXMLP, nnx.Linear)}
    during = nnx.capture(
        lambda m, x: {cls: cls.__dict__["__call__"] is f for cls, f in originals.items()},
        method_outputs=nnx.Intermediate,
    )(model, jnp.ones((2, 4)))
    assert during == {script.NNXMLP: False, nnx.Linear: False}, "both classes are wrapped during the call"
    assert all(cls.__dict__["__call__"] is f for cls, f in originals.items()), "and restored after it"
    assert "__captures__" not in vars(model), "nothing is left on the instance"


def test_a_hook_receives_the_relu_output_and_only_fx_reaches_the_residual_sum():
    out = section(run_script("intermediates"), "Any value of the forward pass")
    assert "torch.fx nodes: ['x', 'dense1', 'relu', 'dense2', 'output']" in out
    assert "relu, hooks that receive it: ['dense2 args[0]']" in out, "a function's output is dense2's input"
    assert "residual block, torch.fx nodes: ['x', 'dense', 'add', 'relu', 'output']" in out
    assert "add, hooks that receive it: []" in out


def test_hooks_that_receive_finds_inputs_and_outputs_and_the_sum_is_not_the_blocks_output(script, models):
    """The helper is not blind: it names every hook that receives a value; and the sum differs from the
    block's output (the ReLU clips some of it), so no hook receives it in another guise."""
    torch_model, _, _ = models
    x = script.make_data()
    values, receive = script.torch_fx_values(torch_model, x), script.hooks_that_receive
    assert receive(torch_model, x, torch.from_numpy(x)) == ["dense1 args[0]", "model args[0]"]
    assert receive(torch_model, x, values["dense1"]) == ["dense1 output"]
    assert receive(torch_model, x, values["dense2"]) == ["dense2 output", "model output"]
    block = script.make_residual()
    block_values = script.torch_fx_values(block, x)
    assert bool((block_values["add"] < 0).any()), "relu(add) != add"
    assert receive(block, x, block_values["relu"]) == ["model output"]
    assert receive(block, x, block_values["dense"]) == ["dense output"]


def test_sow_records_the_hidden_value_in_linen_and_nnx():
    out = section(run_script("intermediates"), "Any value of the forward pass")
    assert "Linen sow with mutable=[\"intermediates\"]: {'intermediates': {'hidden': ((6, 8),)}}" in out
    assert "NNX sow in nnx.capture(model, nnx.Intermediate): {'hidden': ((6, 8),)}" in out


def test_the_three_frameworks_record_the_same_activations():
    out = section(run_script("intermediates"), "The same activations in three frameworks")
    assert "(tolerance 1e-06)" in out
    for layer in ("dense1", "hidden"):
        line = next(line for line in out.splitlines() if line.startswith(f"{layer}:"))
        diffs = floats_after("PyTorch|", line)
        assert len(diffs) == 2 and max(diffs) <= TOLERANCE, line
        assert line.endswith("within: True")


def test_recorded_values_are_the_real_activations(script, models):
    """Checked here against numbers computed by hand, not only against each other."""
    torch_model, params, nnx_model = models
    x = script.make_data()
    by_hand = np.maximum(x @ np.asarray(params["dense1"]["kernel"]) + np.asarray(params["dense1"]["bias"]), 0)
    _, sown = nnx.capture(nnx_model, nnx.Intermediate)(x)
    assert np.abs(np.asarray(sown["hidden"][0]) - by_hand).max() <= TOLERANCE
    assert np.abs(script.torch_fx_values(torch_model, x)["relu"].numpy() - by_hand).max() <= TOLERANCE
    assert (by_hand == 0).any() and (by_hand > 0).any(), "the ReLU is active and inactive somewhere"


def test_the_record_is_state():
    out = section(run_script("intermediates"), "Why it is state")
    assert "Linen apply without mutable returns: ArrayImpl (6, 3)" in out
    assert "Linen init keeps: ['params']" in out
    assert "capture_intermediates=True alone returns a pair: True" in out
    assert "NNX capture returns: State of Intermediate" in out
    assert "NNX model keeps afterwards: {}" in out
    assert "nnx.capture(model) returns: ArrayImpl (6, 3)" in out
    assert f"Module.sow's source says {SOW_DEPRECATION!r}: True" in out


def test_linen_sow_does_nothing_and_says_so_when_its_collection_is_not_mutable():
    class Sows(nn.Module):
        @nn.compact
        def __call__(self, x):
            return self.sow("intermediates", "x", x)

    assert Sows().apply({}, jnp.ones(2)) is False
    stored, state = Sows().apply({}, jnp.ones(2), mutable=["intermediates"])
    assert stored is True and len(state["intermediates"]["x"]) == 1


def test_capture_intermediates_filter_gets_the_module_and_the_method_name(script, models):
    _, params, _ = models
    seen = []

    def record_all(module, method_name):
        seen.append((module.name, method_name))
        return False

    _, state = script.LinenMLP().apply(
        {"params": params}, script.make_data(), capture_intermediates=record_all, mutable=["intermediates"]
    )
    assert ("dense1", "__call__") in seen and ("dense2", "__call__") in seen
    assert list(state["intermediates"]) == ["hidden"], "a filter that says no keeps only what was sown"


def test_recording_works_under_jit_and_a_dict_write_keeps_a_tracer():
    out = section(run_script("intermediates"), "Under jit")
    assert "a dict written inside jax.jit holds: DynamicJaxprTracer" in out
    assert "Linen under jax.jit: {'intermediates': {'hidden': ((6, 8),)}}, max |jit - eager|" in out
    assert "NNX under nnx.jit: {'hidden': ((6, 8),)}, max |jit - eager|" in out
    diffs = floats_after("max |jit - eager|", out)
    assert len(diffs) == 2 and max(diffs) <= TOLERANCE, "the same values as without jit, within 1e-6"
    assert "Linen jit within 1e-6 of eager: True" in out and "NNX jit within 1e-6 of eager: True" in out


def test_an_unrequested_sow_leaves_the_program_unchanged_and_a_request_adds_only_outputs():
    out = run_script("intermediates")
    linen = out.split("-- Linen jaxprs")[1].split("-- NNX jaxprs")[0]
    nnx_part = out.split("-- NNX jaxprs")[1].split("\n== ")[0]
    for line in jaxpr_lines(LINEN_PROGRAMS):
        assert line in linen, line
    for line in jaxpr_lines(NNX_PROGRAMS):
        assert line in nnx_part, line


def test_the_unrequested_jaxpr_is_exactly_the_one_without_sow(script, models):
    _, params, _ = models
    x = script.make_data()
    for jaxprs in (script.linen_jaxprs(params, x), script.nnx_jaxprs(params, x)):
        texts = [str(jaxpr) for jaxpr in jaxprs.values()]
        assert texts[0] == texts[1]
        assert texts[2] != texts[0] and texts[2].split(" in (")[0] == texts[0].split(" in (")[0]


def test_records_grow_when_fed_back():
    out = section(run_script("intermediates"), "Records that grow")
    assert "PyTorch appending hook, entries after each call: [1, 2, 3]" in out
    assert "; after remove and one more call: 3" in out
    assert "Linen fed back: tuple lengths [1, 2, 3], traces 3" in out, "a retrace per call under jit"
    assert "Linen kept apart: tuple lengths [1, 1, 1], new traces 0" in out
    assert "NNX fresh capture: tuple lengths [1, 1, 1]; passed back as init: [1, 2, 3]" in out


def test_a_sowing_nnx_model_called_directly_warns_and_through_capture_does_not(script, models):
    """The deprecation the page reads from Module.sow's source, triggered here (the page never calls it)."""
    _, _, nnx_model = models
    model = nnx.clone(nnx_model)
    with pytest.warns(DeprecationWarning, match=re.escape(SOW_DEPRECATION)):
        model(script.make_data())
    out = nnx.capture(nnx.clone(nnx_model))(script.make_data())  # pytest turns any warning into an error
    assert out.shape == (6, 3)


def test_exercise_running_maximum_agrees_in_the_three_frameworks():
    out = section(run_script("intermediates"), "Exercise: a running maximum")
    assert "running max shape: (8,)" in out
    for name in ("PyTorch", "Linen", "NNX"):
        (diff,) = floats_after(f"{name}: max |running max - max over all batches|", out)
        assert diff <= TOLERANCE


def test_exercise_functions_keep_a_running_maximum(script, models):
    torch_model, params, _ = models
    batches = [script.make_data(seed) for seed in (1, 2, 3)]
    nnx_model = script.copy_into_nnx(script.NNXMaxMLP(nnx.Rngs(0)), params)
    first_only = script.running_max_linen(params, batches[:1])
    all_three = script.running_max_linen(params, batches)
    assert bool((all_three >= first_only).all()) and bool((all_three > first_only).any())
    assert np.abs(script.running_max_nnx(nnx_model, batches) - all_three).max() <= TOLERANCE
    assert np.abs(script.running_max_torch(torch_model, batches) - np.asarray(all_three)).max() <= TOLERANCE


def test_copying_weights_is_the_transpose(script, models):
    torch_model, params, nnx_model = models
    weight = torch_model.dense1.weight.detach().numpy()
    assert weight.shape == (8, 4) and params["dense1"]["kernel"].shape == (4, 8)
    assert bool(jnp.array_equal(nnx_model.dense1.kernel[...], weight.T))
    assert isinstance(jax.tree.leaves(params)[0], jax.Array) and isinstance(torch_model, torch.nn.Module)


# -- The rendered page -------------------------------------------------------------------------


def tab_texts(site):
    """Each framework tab-set of the page as a list of its tabs' texts."""
    return [
        [tab.get_text() for tab in tab_set.select("div.sd-tab-content")]
        for tab_set in site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    ]


def test_page_has_the_framework_tabs(site):
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    labels = [[label.get_text(strip=True) for label in ts.select("label.sd-tab-label")] for ts in tab_sets]
    three, two = ["PyTorch", "Flax Linen", "Flax NNX"], ["Flax Linen", "Flax NNX"]
    assert labels == [three, three, three, two, two, two, three]
    tabs = tab_texts(site)
    assert 'self.sow("intermediates", "hidden", hidden)' in tabs[0][1]
    assert 'self.sow(nnx.Intermediate, "hidden", hidden)' in tabs[0][2]
    assert "register_forward_hook(keep_output)" in tabs[1][0] and "handle.remove()" in tabs[1][0]
    assert "capture_intermediates=only_dense1" in tabs[1][1]
    assert "method_outputs=nnx.Intermediate" in tabs[1][2]
    assert "class Subclass(NNXMLP):" in tabs[1][2] and "NNXMLP.__call__ is original" in tabs[1][2]
    assert "torch.fx.symbolic_trace(model)" in tabs[2][0] and "register_forward_hook" in tabs[2][0]
    assert "return torch.relu(self.dense(x) + x)" in tabs[2][0], "the residual block, in the PyTorch tab"
    assert 'mutable=["intermediates"]' in tabs[2][1]
    assert "nnx.capture(nnx_model, nnx.Intermediate)" in tabs[2][2]
    assert "@nnx.jit\n@nnx.capture(nnx.Intermediate)" in tabs[4][1], "the decorator form, inside nnx.jit"
    side_by_side = ["side-by-side" in tab_set.get("class", []) for tab_set in tab_sets]
    assert side_by_side == [False, False, False, False, True, False, False], "the jit pair reads across"


def test_page_shows_the_same_numbers_as_the_script(site):
    out = run_script("intermediates")
    agreement = site.output_with(PAGE, "within:")
    section_out = section(out, "The same activations in three frameworks")
    assert floats_after("PyTorch|", agreement) == floats_after("PyTorch|", section_out)
    assert "within: False" not in agreement and agreement.count("within: True") == 2
    for label in ("max |Linen - PyTorch| output:", "max |NNX - PyTorch| output:"):
        page_diffs = floats_after(label, site.output_with(PAGE, label))
        assert page_diffs == floats_after(label, out) and page_diffs[0] <= TOLERANCE


def test_page_shows_hooks_filters_and_capture(site):
    hook = site.output_with(PAGE, "register_forward_hook returns:")
    assert "register_forward_hook returns: RemovableHandle" in hook
    assert "recorded dense1: (6, 8)" in hook and "recorded after handle.remove(): {}" in hook
    linen = site.output_with(PAGE, "capture_intermediates=only_dense1:")
    assert f"capture_intermediates=True: {LINEN_ALL}" in linen
    assert f"capture_intermediates=only_dense1: {LINEN_FILTERED}" in linen
    nnx_out = site.output_with(PAGE, "method_outputs=nnx.Intermediate:")
    assert f"method_outputs=nnx.Intermediate: {NNX_METHODS}" in nnx_out
    assert "type of each entry: Intermediate" in nnx_out
    assert "nnx.capture's parameters: ['fn', 'var_types', 'init', 'method_outputs']" in nnx_out
    subclass = site.output_with(PAGE, "a subclass, called through logits:")
    assert f"a subclass, called through logits: {SUBCLASS_METHODS}" in subclass
    assert "NNXMLP.__call__ is the original during the call: False | after it: True" in subclass
    fx = site.output_with(PAGE, "nodes: ['x', 'dense1'")
    assert "nodes: ['x', 'dense1', 'relu', 'dense2', 'output']" in fx
    assert "relu: (6, 8) | hooks that receive it: ['dense2 args[0]']" in fx
    residual = site.output_with(PAGE, "residual block, nodes:")
    assert "residual block, nodes: ['x', 'dense', 'add', 'relu', 'output']" in residual
    assert "add | hooks that receive it: []" in residual


def test_page_shows_why_the_record_is_state(site):
    linen = site.output_with(PAGE, "apply without mutable returns:")
    assert "apply without mutable returns: ArrayImpl (6, 3)" in linen
    assert "init returns the collections: ['params']" in linen
    assert "capture_intermediates=True alone returns a pair: True" in linen
    nnx_out = site.output_with(PAGE, "nnx.capture returns a")
    assert "nnx.capture returns a State of Intermediate variables" in nnx_out
    assert "Intermediate variables left on the model: {}" in nnx_out
    assert "nnx.capture(model) returns: ArrayImpl (6, 3)" in nnx_out
    assert f"Module.sow's source says {SOW_DEPRECATION!r}: True" in nnx_out


def test_page_shows_jit_and_the_jaxprs(site):
    assert "the dict holds a DynamicJaxprTracer" in site.output_with(PAGE, "the dict holds")
    for label, shape in [
        ("under jax.jit:", "{'intermediates': {'hidden': ((6, 8),)}}"),
        ("under nnx.jit:", "{'hidden': ((6, 8),)}"),
    ]:
        out = site.output_with(PAGE, label)
        (diff,) = floats_after("max |jit - eager|", out)
        assert f"{label} {shape}" in out and diff <= TOLERANCE and "within 1e-6: True" in out
    linen = site.output_with(PAGE, "capture_intermediates=True             equations")
    assert linen.strip().splitlines() == jaxpr_lines(LINEN_PROGRAMS)
    nnx_out = site.output_with(PAGE, "nnx.capture(model, nnx.Intermediate)   equations")
    assert nnx_out.strip().splitlines() == jaxpr_lines(NNX_PROGRAMS)


def test_page_shows_records_that_grow(site):
    torch_out = site.output_with(PAGE, "entries after each call:")
    assert "entries after each call: [1, 2, 3] | after remove() and one more call: 3" in torch_out
    linen = site.output_with(PAGE, "fed back:")
    assert "fed back:   tuple lengths [1, 2, 3] | traces 3" in linen
    assert "kept apart: tuple lengths [1, 1, 1] | new traces 0" in linen
    nnx_out = site.output_with(PAGE, "passed back as init")
    assert "fresh capture at each call: tuple lengths [1, 1, 1]" in nnx_out
    assert "last record passed back as init: tuple lengths [1, 2, 3]" in nnx_out


def test_page_calls_no_deprecated_api_and_hides_no_warning(site, tmp_path):
    """Current APIs only: the page's cells, run as one program with warnings as errors, run through; and
    none of them silences warnings (Module.sow outside nnx.capture would warn)."""
    cells = [cell.source for cell in site.notebook(PAGE).cells if cell.cell_type == "code"]
    assert not any("warnings" in source for source in cells)
    program = tmp_path / "page.py"
    program.write_text("\n\n".join(cells), encoding="utf8")
    done = subprocess.run(
        [sys.executable, "-W", "error", str(program)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stdout + done.stderr


def test_page_exercise_solution_runs_and_agrees(site):
    out = site.output_with(PAGE, "max |running max - max over all batches|")
    for name in ("PyTorch", "Linen", "NNX"):
        (diff,) = floats_after(f"{name}: shape (8,), max |running max - max over all batches|", out)
        assert diff <= TOLERANCE
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    code = solution.select_one("div.cell_input").get_text()
    assert "reduce_fn=jnp.maximum" in code and "init=record" in code and "register_forward_hook" in code


def test_page_prints_no_warning_address_or_path(site):
    outputs = site.outputs(PAGE)
    assert not any("Warning" in output for output in outputs)
    assert not any(re.search(r"0x[0-9a-f]{6,}", output) for output in outputs)
    assert not any("/tmp/" in output or "site-packages" in output for output in outputs)
