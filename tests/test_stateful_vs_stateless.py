"""The claims of docs/stateful-vs-stateless.md, checked in its script and in the rendered page."""

from bs4 import BeautifulSoup
from conftest import run_script, section

PAGE = "stateful-vs-stateless"
FRAMEWORKS = ["PyTorch", "Flax Linen", "Flax NNX"]


def line_after(label, text):
    """The rest of the first line of ``text`` that starts with ``label``."""
    return next(line for line in text.splitlines() if line.startswith(label))[len(label) :].strip()


# -- The script ----------------------------------------------------------------------------------


def test_torch_module_owns_parameters_and_buffers_from_construction():
    out = run_script("stateful_vs_stateless")
    state_dict = line_after("torch state_dict:", section(out, "Construction"))
    for name in ("'dense1.weight': (8, 4)", "'norm.running_mean': (8,)", "'norm.running_var': (8,)"):
        assert name in state_dict
    where = section(out, "Where the variables are")
    parameters = line_after("torch parameters:", where)
    buffers = line_after("torch buffers:", where)
    assert "'dense1.weight': (8, 4)" in parameters and "'norm.weight': (8,)" in parameters
    assert "running_mean" not in parameters, "running statistics are not parameters"
    assert buffers == "{'norm.running_mean': (8,), 'norm.running_var': (8,), 'norm.num_batches_tracked': ()}"


def test_a_non_persistent_buffer_is_kept_but_not_saved():
    where = section(run_script("stateful_vs_stateless"), "Where the variables are")
    assert "buffers of a module with persistent=False: ['kept', 'scratch']" in where
    assert "its state_dict: ['kept']" in where


def test_torch_forward_pass_in_train_mode_changes_a_buffer_in_place():
    forward = section(run_script("stateful_vs_stateless"), "A forward pass in training mode")
    assert "torch forward pass changed running_mean in place: True" in forward


def test_linen_module_holds_nothing_until_init_returns_a_plain_dict():
    out = run_script("stateful_vs_stateless")
    construction = section(out, "Construction")
    assert "linen module: LinenNet()" in construction
    assert (
        "module.variables before init: ValueError - Can't access variables on unbound modules" in construction
    )
    where = section(out, "Where the variables are")
    assert "linen init returns a dict with collections ['batch_stats', 'params']" in where
    variables = line_after("linen variables:", where)
    assert "'batch_stats': {'norm': {'mean': (8,), 'var': (8,)}}" in variables
    assert "'dense1': {'bias': (8,), 'kernel': (4, 8)}" in variables, "a Dense kernel is (in, out)"
    assert "linen apply takes the variables and the data; output shape: (5, 2)" in where


def test_linen_returns_new_statistics_and_leaves_its_input_alone():
    forward = section(run_script("stateful_vs_stateless"), "A forward pass in training mode")
    assert "updates: {'batch_stats': {'norm': {'mean': (8,), 'var': (8,)}}}" in forward
    assert "linen returned new statistics: True" in forward
    assert "linen variables passed in unchanged (mean still zero): True" in forward


def test_eval_shape_gives_shapes_without_memory():
    shapes = section(run_script("stateful_vs_stateless"), "Shapes without memory")
    assert "torch meta-device weight: meta (8, 4) is_meta: True" in shapes
    assert "jax.eval_shape(model.init) kernel: ShapeDtypeStruct(shape=(4, 8), dtype=float32)" in shapes
    assert "same shapes as the real init: True" in shapes
    assert "nnx.eval_shape kernel: ShapeDtypeStruct(shape=(4, 8), dtype=float32)" in shapes
    assert shapes.count("is a ShapeDtypeStruct (no memory): True") == 2


def test_nnx_allocates_at_construction_and_updates_in_place():
    out = run_script("stateful_vs_stateless")
    construction = section(out, "Construction")
    assert "nnx kernel right after construction: Param (4, 8) float32" in construction
    assert "holds a jax.Array: True" in construction
    where = section(out, "Where the variables are")
    assert line_after("nnx.BatchStat:", where) == "{'norm': {'mean': (8,), 'var': (8,)}}"
    assert "'kernel': (4, 8)" in line_after("nnx.Param:", where)
    forward = section(out, "A forward pass in training mode")
    assert "nnx forward pass changed the BatchStat mean in place: True" in forward


def test_optimizer_state_inside_torch_returned_by_optax_held_by_nnx():
    optimizer = section(run_script("stateful_vs_stateless"), "Optimizer state")
    assert "torch Adam state entries before the first step: 0" in optimizer, "created lazily"
    assert "torch Adam state entries after the first step: 6" in optimizer, "one per parameter tensor"
    assert "{'step': (), 'exp_avg': (8, 4), 'exp_avg_sq': (8, 4)}" in optimizer
    optax_state = line_after("optax adam init returns:", optimizer)
    assert optax_state.startswith(
        "(ScaleByAdamState(count=(), mu={'dense1': {'bias': (8,), 'kernel': (4, 8)}"
    )
    assert "nnx.Optimizer holds a ScaleByAdamState with mu for ['dense1', 'dense2', 'norm']" in optimizer


# -- The rendered page ---------------------------------------------------------------------------


def tab_sets(site):
    """Each tab-set of the page as {tab label: the text of that tab's cell outputs}."""
    page = BeautifulSoup(site.page("stateful-vs-stateless"), "html.parser")
    result = []
    for tab_set in page.select("div.sd-tab-set"):
        labels = [label.get_text(strip=True) for label in tab_set.select(":scope > label.sd-tab-label")]
        panels = tab_set.select(":scope > div.sd-tab-content")
        result.append(
            {
                label: "\n".join(output.get_text() for output in panel.select("div.cell_output"))
                for label, panel in zip(labels, panels, strict=True)
            }
        )
    return result


def page_outputs(site):
    page = BeautifulSoup(site.page("stateful-vs-stateless"), "html.parser")
    return "\n".join(output.get_text() for output in page.select("div.cell_output"))


def test_page_shows_the_same_steps_in_three_synced_tabs(site):
    sets = tab_sets(site)
    assert len(sets) == 5, "definition, construction, forward pass, shapes, optimizer state"
    assert all(list(tabs) == FRAMEWORKS for tabs in sets)


def test_page_shows_what_each_module_holds_after_construction(site):
    construction = tab_sets(site)[1]
    assert "'norm.running_mean': (8,)" in construction["PyTorch"]
    assert "LinenNet()" in construction["Flax Linen"]
    assert "ValueError: Can't access variables on unbound modules" in construction["Flax Linen"]
    assert "Param (4, 8) float32" in construction["Flax NNX"]


def test_page_shows_parameters_buffers_and_linen_collections(site):
    outputs = page_outputs(site)
    assert "buffers:    {'norm.running_mean': (8,), 'norm.running_var': (8,)" in outputs
    assert "dict ['batch_stats', 'params']" in outputs
    assert "'batch_stats': {'norm': {'mean': (8,), 'var': (8,)}}" in outputs


def test_page_shows_buffers_in_the_state_dict_unless_not_persistent(site):
    saved = site.output_with(PAGE, "state_dict: ['dense1.weight'")
    assert "'norm.running_mean', 'norm.running_var', 'norm.num_batches_tracked', 'dense2.weight'" in saved
    scratch = site.output_with(PAGE, "['kept', 'scratch']")
    assert "state_dict: ['kept']" in scratch
    assert "scratch after .to(torch.float64): torch.float64" in scratch, "the module converts its buffers"


def test_page_shows_in_place_versus_returned_statistics(site):
    forward = tab_sets(site)[2]
    assert "running_mean changed in place: True" in forward["PyTorch"]
    assert "new statistics returned: True" in forward["Flax Linen"]
    assert "variables passed in unchanged (mean still 0): True" in forward["Flax Linen"]
    assert "BatchStat mean changed in place: True" in forward["Flax NNX"]


def test_page_shows_shapes_without_memory(site):
    shapes = tab_sets(site)[3]
    assert "device='meta', size=(8, 4)" in shapes["PyTorch"]
    assert "ShapeDtypeStruct(shape=(4, 8), dtype=float32)" in shapes["Flax Linen"]
    assert "same shapes as the real init: True" in shapes["Flax Linen"]
    assert "value=ShapeDtypeStruct(shape=(4, 8), dtype=float32)" in shapes["Flax NNX"]


def test_page_shows_where_the_optimizer_state_lives(site):
    optimizer = tab_sets(site)[4]
    assert "entries before the first step: 0" in optimizer["PyTorch"]
    assert "entries after the first step:  6" in optimizer["PyTorch"]
    assert "ScaleByAdamState(count=()" in optimizer["Flax Linen"]
    assert "ScaleByAdamState with mu for ['dense1', 'dense2', 'norm']" in optimizer["Flax NNX"]


def test_page_ends_with_the_script(site):
    page = BeautifulSoup(site.page("stateful-vs-stateless"), "html.parser")
    dropdown = page.select("details.sd-dropdown")[-1]
    assert "code/stateful_vs_stateless.py" in dropdown.select_one("summary").get_text()
    assert "class NNXNet(nnx.Module):" in dropdown.get_text()


def test_page_exercise_counts_the_same_numbers_in_the_three_frameworks(site):
    out = site.output_with(PAGE, "running statistics:")
    rows = [line.split() for line in out.strip().splitlines()]
    assert [" ".join(row[: row.index("trained:")]) for row in rows] == FRAMEWORKS
    for row in rows:
        assert row[row.index("trained:") + 1] == "74", "(4*8 + 8) + (8 + 8) + (8*2 + 2)"
        assert row[-1] == "16", "running mean and variance of 8 features"
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "running statistics:" in solution.get_text()
