"""The claims of docs/train-state.md, checked in its script and in the rendered page."""

import itertools
import sys

import flax
import jax
import pytest
from bs4 import BeautifulSoup
from conftest import ROOT, floats_after, run_script

CODE = ROOT / "code"


@pytest.fixture(scope="module")
def script():
    """code/train_state.py imported as a module (code/ is not a package)."""
    sys.path.insert(0, str(CODE))
    try:
        import train_state
    finally:
        sys.path.remove(str(CODE))
    return train_state


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


def page(site):
    return BeautifulSoup(site.page("train-state"), "html.parser")


def outputs(site) -> list[str]:
    cells = page(site).select("div.cell:has(div.cell_output)")
    return [cell.select_one("div.cell_output").get_text() for cell in cells]


def output_with(site, text: str) -> str:
    found = [output for output in outputs(site) if text in output]
    assert len(found) == 1, f"{text!r} is in {len(found)} outputs"
    return found[0]


def test_page_shows_the_two_collections_of_init(site):
    shapes = output_with(site, "'batch_stats': {'BatchNorm_0': {'mean': (16,), 'var': (16,)}}")
    assert "'params': {'BatchNorm_0': {'bias': (16,), 'scale': (16,)}" in shapes


def test_page_error_cell_shows_modify_scope_variable_error(site):
    (cell,) = page(site).select("div.cell.tag_raises-exception")
    assert "mutable" not in cell.select_one("div.cell_input").get_text(), "the call omits mutable"
    text = cell.select_one("div.cell_output").get_text()
    assert "ModifyScopeVariableError" in text
    assert 'collection "batch_stats" is immutable' in text


def test_page_shows_a_new_state_and_the_old_one_unchanged(site):
    text = output_with(site, "step: old 0 -> new 1")
    assert "old state holds the initial params: True" in text
    assert "new state has new params: True" in text
    assert "new state has new batch_stats: True" in text


def test_page_shows_evaluation_changes_nothing(site):
    assert "eval outputs repeat exactly: True" in output_with(site, "eval outputs repeat exactly")
    assert "batch_stats unchanged by eval: True" in output_with(site, "batch_stats unchanged by eval")


def test_page_trains_as_the_script_does(site):
    """The page's loop and the script's give the same losses: the page shows the script's run."""
    page_losses = floats_after("loss", output_with(site, "steps taken: 100"))
    script_losses = floats_after(
        "loss", run_script("train_state").split("== Training ==")[1].split("eval after")[0]
    )
    assert page_losses == script_losses
    (page_accuracy,) = floats_after("accuracy", output_with(site, "eval loss"))
    (script_accuracy,) = floats_after("accuracy", run_script("train_state"))
    assert page_accuracy == script_accuracy


def test_page_plot_has_alt_text_that_matches_the_run(site):
    (image,) = page(site).select("div.cell_output img")
    alt = image.get("alt", "")
    assert len(alt) > 40
    losses = floats_after("loss", run_script("train_state").split("== Training ==")[1].split("eval after")[0])
    assert f"{losses[0]:.2f}" in alt and f"{losses[-1]:.2f}" in alt, "the alt text describes this run"
