"""The claims of docs/train-state.md, checked in its script and in the rendered page."""

import itertools

import flax
import jax
import pytest
from conftest import floats_after, import_script, run_script

PAGE = "train-state"


@pytest.fixture(scope="module")
def script():
    return import_script("train_state")


# -- The script --------------------------------------------------------------------------------


def test_init_splits_params_and_batch_stats():
    out = run_script("train_state")
    params = out.split("params:")[1].splitlines()[0]
    assert "'BatchNorm_0': {'bias': (16,), 'scale': (16,)}" in params, "scale and bias are trained"
    assert "'Dense_0': {'bias': (16,), 'kernel': (4, 16)}" in params
    assert "mean" not in params and "var" not in params
    assert "batch_stats: {'BatchNorm_0': {'mean': (16,), 'var': (16,)}}" in out


def test_apply_gradients_returns_a_new_state_and_leaves_the_old_one():
    out = run_script("train_state")
    assert "step after one train step: 1" in out
    assert "old state's step: 0" in out
    assert "old state still holds the initial params: True" in out
    assert "params changed in the new state: True" in out


def test_a_donating_step_deletes_the_state_it_was_given():
    out = run_script("train_state")
    assert "a donating step returns step 2; the donated state's arrays deleted: True" in out


def test_batch_stats_change_in_a_train_step_and_not_in_evaluation():
    out = run_script("train_state")
    assert "batch_stats changed in train step: True" in out
    assert "batch_stats unchanged in eval: True" in out
    assert "eval outputs repeat exactly (no dropout): True" in out


def test_train_mode_apply_without_mutable_raises():
    assert "train-mode apply without mutable raises: ModifyScopeVariableError" in run_script("train_state")


def test_the_loss_goes_down():
    out = run_script("train_state")
    losses = floats_after("loss", out.split("== Training ==")[1].split("eval after")[0])
    assert len(losses) == 5
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < losses[0] / 2
    assert "loss went down: True" in out
    (accuracy,) = floats_after("accuracy", out)
    assert accuracy > 0.9


def test_functions_are_importable(script):
    losses = script.train(30)
    assert len(losses) == 30 and losses[-1] < losses[0]


def test_apply_without_mutable_raises_the_real_error(script):
    x, _ = script.make_data(jax.random.key(0))
    state = script.create_state(jax.random.key(1), x)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    with pytest.raises(flax.errors.ModifyScopeVariableError, match='collection "batch_stats" is immutable'):
        state.apply_fn(variables, x, train=True, rngs={"dropout": jax.random.key(2)})


def test_apply_gradients_is_keyword_only(script):
    x, y = script.make_data(jax.random.key(0))
    state = script.create_state(jax.random.key(1), x)
    with pytest.raises(TypeError):
        state.apply_gradients(state.params)


# -- The rendered page -------------------------------------------------------------------------


def test_page_shows_the_two_collections_of_init(site):
    shapes = site.output_with(PAGE, "'batch_stats': {'BatchNorm_0': {'mean': (16,), 'var': (16,)}}")
    assert "'params': {'BatchNorm_0': {'bias': (16,), 'scale': (16,)}" in shapes


def test_page_error_cell_shows_modify_scope_variable_error(site):
    (cell,) = site.soup(PAGE).select("div.cell.tag_raises-exception")
    assert "mutable" not in cell.select_one("div.cell_input").get_text(), "the call omits mutable"
    text = cell.select_one("div.cell_output").get_text()
    assert "ModifyScopeVariableError" in text
    assert 'collection "batch_stats" is immutable' in text


def test_page_shows_a_new_state_and_the_old_one_unchanged(site):
    text = site.output_with(PAGE, "step: old 0 -> new 1")
    assert "old state holds the initial params: True" in text
    assert "new state has new params: True" in text
    assert "new state has new batch_stats: True" in text


def test_page_shows_a_kept_reference_is_no_use_after_donation(site):
    text = site.output_with(PAGE, "the kept state's arrays are deleted:")
    assert "step of the result: 2" in text
    assert "the kept state's arrays are deleted: True" in text


def test_page_says_what_the_stock_train_state_holds(site):
    text = " ".join(site.soup(PAGE).select_one("article").get_text(" ").split())
    assert "bundles the parameters, the optimizer’s state and the step count" in text, "smart quotes"
    assert "bundles the first four" not in text


def test_page_shows_evaluation_changes_nothing(site):
    assert "eval outputs repeat exactly: True" in site.output_with(PAGE, "eval outputs repeat exactly")
    assert "batch_stats unchanged by eval: True" in site.output_with(PAGE, "batch_stats unchanged by eval")


def test_page_trains_as_the_script_does(site):
    """The page's loop and the script's give the same losses: the page shows the script's run."""
    page_losses = floats_after("loss", site.output_with(PAGE, "steps taken: 100"))
    script_losses = floats_after(
        "loss", run_script("train_state").split("== Training ==")[1].split("eval after")[0]
    )
    assert page_losses == script_losses
    (page_accuracy,) = floats_after("accuracy", site.output_with(PAGE, "eval loss"))
    (script_accuracy,) = floats_after("accuracy", run_script("train_state"))
    assert page_accuracy == script_accuracy


def test_page_plot_has_alt_text_that_matches_the_run(site):
    (image,) = site.soup(PAGE).select("div.cell_output img")
    alt = image.get("alt", "")
    assert len(alt) > 40
    losses = floats_after("loss", run_script("train_state").split("== Training ==")[1].split("eval after")[0])
    assert f"{losses[0]:.2f}" in alt and f"{losses[-1]:.2f}" in alt, "the alt text describes this run"


def test_page_exercise_swaps_in_adamw_without_changing_the_step(site):
    out = site.output_with(PAGE, "AdamW: 100 steps")
    adam, adamw = out.split("AdamW:")
    assert "Adam: 100 steps" in adam
    assert "optimizer state: ['ScaleByAdamState', 'EmptyState']" in adam
    assert "optimizer state: ['ScaleByAdamState', 'EmptyState', 'EmptyState']" in adamw, "one more part"
    (adam_norm,), (adamw_norm,) = floats_after("parameter norm", adam), floats_after("parameter norm", adamw)
    assert adamw_norm < adam_norm, "weight decay keeps the parameters smaller"
    (adam_loss,) = floats_after("final loss", adam)
    assert adam_loss == floats_after("loss", site.output_with(PAGE, "steps taken: 100"))[-1], "the page's run"
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "optax.adamw" in solution.select_one("div.cell_input").get_text()
