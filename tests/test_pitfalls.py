"""The claims of docs/pitfalls.md, checked in its script and in the rendered page."""

import re

import pytest
from conftest import floats_after, run_script
from strict_execution import raised_exception

PAGE = "pitfalls"


def lines(number: int, kind: str) -> str:
    """The script's lines for one pitfall and one kind (wrong, fixed, contrast), joined."""
    prefix = f"{number} {kind}: "
    return "\n".join(line for line in run_script("pitfalls").splitlines() if line.startswith(prefix))


# -- The script --------------------------------------------------------------------------------


def test_every_pitfall_prints_a_wrong_and_a_fixed_line():
    for number in range(1, 11):
        assert lines(number, "wrong") and lines(number, "fixed"), number


def test_jit_reads_python_state_once():
    assert "scaled(2.0) with the global scale 1.0 then 10.0: 2.0 then 2.0" in lines(1, "wrong")
    assert "3 jitted calls appended 1 value(s) to the list, all tracers: True" in lines(1, "wrong")
    assert "scale as an argument, 1.0 then 10.0: 2.0 then 20.0" in lines(1, "fixed")
    assert "losses returned by 3 jitted calls: [3.0, 12.0, 27.0]" in lines(1, "fixed")


def test_arrays_are_immutable_and_at_set_copies():
    assert "x[0] = 1.0 on a JAX array raises TypeError" in lines(2, "wrong")
    assert "x.at[0].set(1.0) returns [1.0, 0.0, 0.0], x stays [0.0, 0.0, 0.0]" in lines(2, "fixed")


def test_a_donated_array_is_deleted():
    assert "after donating params, reading them raises RuntimeError" in lines(3, "wrong")
    assert "params = sgd_step(params, grads), twice: [0.5, 0.5, 0.5]" in lines(3, "fixed")


def test_a_reused_key_repeats_the_dropout_mask():
    assert "all equal: True" in lines(4, "wrong")
    assert "all different: True" in lines(4, "fixed")
    contrast = lines(4, "contrast")
    assert "NNX Dropout advances its Rngs stream, all different: True" in contrast
    assert "PyTorch Dropout's hidden generator, all different: True" in contrast


def test_batchnorm_in_training_mode_needs_mutable():
    assert "apply in training mode without mutable raises ModifyScopeVariableError" in lines(5, "wrong")
    fixed = lines(5, "fixed")
    assert "returns ['batch_stats']" in fixed
    assert "mean passed in still zero: True, mean returned moved: True" in fixed


def test_dropping_apply_gradients_loses_the_update():
    wrong, fixed = lines(6, "wrong"), lines(6, "fixed")
    assert "step 0," in wrong
    assert "step 3," in fixed
    stuck = [float(value) for value in re.findall(r"[\d.]+", wrong.split("losses")[1])]
    assert len(stuck) == 3 and len(set(stuck)) == 1, "the loss does not move"
    moving = [float(value) for value in re.findall(r"[\d.]+", fixed.split("losses")[1])]
    assert moving[0] == stuck[0] and moving[0] > moving[1] > moving[2], "same start, then it goes down"
    for contrast in lines(6, "contrast").splitlines():
        losses = [float(value) for value in re.findall(r"[\d.]+", contrast.split("losses")[1])]
        assert losses[0] > losses[1] > losses[2], f"in place, without assignment: {contrast}"


def test_a_plain_list_hides_layers():
    wrong, fixed = lines(7, "wrong"), lines(7, "fixed")
    assert "NNX, a plain list of Linear layers as an attribute raises ValueError" in wrong
    assert "PyTorch, a plain list of Linear layers: 0 parameter tensors found" in wrong
    assert "4 Param arrays, 6 in all" in fixed, "2 layers x (kernel, bias), plus the 2 nnx.data arrays"
    assert "PyTorch, nn.ModuleList of 2 layers: 4 parameter tensors found" in fixed


def test_an_nnx_model_under_plain_jax_jit_never_learns_and_says_nothing():
    assert "optimizer.step 0, losses [15.28, 15.28, 15.28]" in lines(9, "wrong")
    fixed = lines(9, "fixed").splitlines()
    assert fixed == [
        "9 fixed: the same step under nnx.jit: optimizer.step 3, losses [15.28, 8.914, 5.325]",
        "9 fixed: plain jax.jit returning the objects: optimizer.step 3, losses [15.28, 8.914, 5.325]",
    ]


def test_a_linen_train_flag_must_be_static_under_jit():
    assert "raises TracerBoolConversionError" in lines(10, "wrong")
    assert "3 calls traced for [True, False]" in lines(10, "fixed"), "one trace per value of the flag"


def test_evaluation_needs_eval_mode():
    wrong, fixed = lines(8, "wrong"), lines(8, "fixed")
    assert "NNX in training mode: two calls agree: False, BatchNorm mean changed: True" in wrong
    assert "NNX after model.eval(): two calls agree: True, BatchNorm mean changed: False" in fixed
    assert "PyTorch in training mode: two calls agree: False, running_mean changed: True" in wrong
    assert (
        "PyTorch after model.eval(), under torch.no_grad(): two calls agree: True, running_mean changed: "
        "False, output records a graph: False" in fixed
    )


# -- The page ----------------------------------------------------------------------------------


def named_error_cells(site) -> dict[str, list]:
    """{exception name from the cell's raises:<Name> tag: [cells]}."""
    found = {}
    for cell in site.soup(PAGE).select("div.cell.tag_raises-exception"):
        (name,) = [css[len("tag_raises:") :] for css in cell["class"] if css.startswith("tag_raises:")]
        found.setdefault(name, []).append(cell)
    return found


def test_page_has_its_description(site):
    description = site.soup(PAGE).select_one('meta[name="description"]')["content"]
    assert description.startswith("Ten state bugs") and 50 <= len(description) <= 160


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("TypeError", "JAX arrays are immutable"),
        ("RuntimeError", "Array has been deleted"),
        ("ModifyScopeVariableError", 'collection "batch_stats" is immutable'),
        ("ValueError", "Found data on value of type '<class 'list'>'"),
        ("TracerBoolConversionError", "Attempted boolean conversion of traced array with shape bool[]"),
    ],
)
def test_each_expected_error_is_real_and_the_one_named(site, name, message):
    (cell,) = named_error_cells(site)[name]
    traceback = cell.select_one(".traceback").get_text()
    assert raised_exception(traceback) == name
    assert message in traceback


def test_every_error_cell_names_its_exception(site):
    assert sum(len(cells) for cells in named_error_cells(site).values()) == len(
        site.soup(PAGE).select("div.cell.tag_raises-exception")
    )
    assert len(site.soup(PAGE).select(".traceback")) == 5, "only the five expected errors"


def test_page_shows_stale_jit_state_and_the_fix(site):
    assert site.output_with(PAGE, "2.0\n2.0").split() == ["2.0", "2.0"]
    assert site.output_with(PAGE, "JitTracer").split() == ["1", "[JitTracer(float32[])]"]
    assert site.output_with(PAGE, "2.0 20.0").split() == ["2.0", "20.0", "[3.0,", "12.0,", "27.0]"]


def test_page_shows_at_set_and_donation(site):
    shown = site.output_with(PAGE, "y: [1. 0. 0.]").split()
    assert shown == ["x:", "[0.", "0.", "0.]", "y:", "[1.", "0.", "0.]"]
    assert "new params: [0.75 0.75 0.75]" in site.output_with(PAGE, "new params:")
    assert site.output_with(PAGE, "params: [0.5").split() == ["params:", "[0.5", "0.5", "0.5]"]


def masks(output: str) -> list[str]:
    return re.findall(r"kept \[([01 ]+)\]", output)


def test_page_shows_identical_masks_then_different_ones(site):
    mask_outputs = [masks(output) for output in site.outputs(PAGE) if "kept [" in output]
    reused, split, torch_masks, nnx_masks = mask_outputs
    assert len(reused) == 3 and len(set(reused)) == 1
    for different in (split, torch_masks, nnx_masks):
        assert len(different) == 3 and len(set(different)) == 3


def test_page_shows_batch_stats_returned_not_written(site):
    out = site.output_with(PAGE, "mean passed in:")
    assert floats_after("mean passed in: [", out) == [0.0]
    assert "[0. 0. 0. 0.]" in out
    returned = re.search(r"mean returned:\s*\[([^\]]*)\]", out).group(1).split()
    assert len(returned) == 4 and any(float(value) != 0 for value in returned)


def test_page_shows_the_step_stuck_then_advancing(site):
    stuck = site.output_with(PAGE, "step 0  loss 8.698")  # pitfall 6; pitfall 9 gets stuck too, at 15.280
    assert stuck.count("step 0  loss") == 3
    assert len(set(floats_after("loss", stuck))) == 1
    outputs = site.outputs(PAGE)
    advancing = [output for output in outputs if "step 3  loss" in output and "step 1  loss" in output]
    # pitfall 6: Linen with the assignment, PyTorch and NNX in place; pitfall 9: nnx.jit, returned objects
    assert len(advancing) == 5
    for output in advancing:
        losses = floats_after("loss", output)
        assert losses[0] > losses[1] > losses[2]
    assert floats_after("loss", advancing[0])[0] == floats_after("loss", stuck)[0], "same start"


def test_page_shows_plain_lists_and_their_fixes(site):
    found = re.findall(r"PyTorch finds: (\d+)", "".join(site.outputs(PAGE)))
    assert [float(value) for value in found] == [0, 4]
    fixed = site.output_with(PAGE, "Param arrays NNX finds:")
    assert "Param arrays NNX finds: 4" in fixed and "arrays in the whole state: 6" in fixed


def test_page_shows_training_mode_at_evaluation_then_eval(site):
    train_mode = [output for output in site.outputs(PAGE) if "second call:" in output]
    assert len(train_mode) == 2, "PyTorch and NNX"
    for output in train_mode:
        first = re.search(r"first call:\s*\[([^\]]*)\]", output).group(1).split()
        second = re.search(r"second call:\s*\[([^\]]*)\]", output).group(1).split()
        assert first != second
        assert "mean changed: True" in output
    eval_mode = [output for output in site.outputs(PAGE) if "two calls agree:" in output]
    assert len(eval_mode) == 2
    for output in eval_mode:
        assert "two calls agree: True" in output and "mean changed: False" in output
    assert "output records a graph: False" in eval_mode[0]


def test_page_shows_an_nnx_model_stuck_under_plain_jit_then_both_fixes(site):
    steps = [output.split() for output in site.outputs(PAGE)]
    stuck = "step 0 loss 15.280 step 0 loss 15.280 step 0 loss 15.280".split()
    learning = "step 1 loss 15.280 step 2 loss 8.914 step 3 loss 5.325".split()
    assert steps.count(stuck) == 1, "plain jax.jit: the loss never moves, no error"
    # the in-place NNX contrast of pitfall 6, then nnx.jit and the returned objects of pitfall 9
    assert steps.count(learning) == 3
    assert not any("Warning" in output for output in site.outputs(PAGE)), "silent: not even a warning"


def test_page_shows_a_static_train_flag_traced_once_per_value(site):
    out = site.output_with(PAGE, "(tracing with train=").split("\n")
    traces = [line.strip() for line in out if "tracing" in line]
    assert traces == ["(tracing with train=True)", "(tracing with train=False)"]
    assert "train=True: output (16, 4), collections returned: ['batch_stats']" in out


def test_page_contrasts_pytorch_in_synced_tabs(site):
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    assert len(tab_sets) == 6
    for tab_set in tab_sets:
        assert [label.get_text(strip=True) for label in tab_set.select("label")] == ["PyTorch", "Flax NNX"]


def test_page_opens_the_guides_last_part_on_the_landing_page(site):
    index = site.soup("index")
    (card,) = [card for card in index.select("article .sd-card") if "pitfalls.html" in str(card)]
    assert "When state goes wrong" in card.get_text()
    nav = [a["href"] for a in index.select("nav.bd-docs-nav a")]
    assert nav.index("pitfalls.html") + 1 == nav.index("cost-of-statelessness.html")


def noisy_steps(output: str) -> list[tuple[str, str]]:
    return re.findall(r"step \d: w \[([^\]]*)\], noise \[([^\]]*)\]", output)


def test_page_exercise_shows_the_two_bugs_then_the_fix(site):
    buggy, fixed = [noisy_steps(output) for output in site.outputs(PAGE) if "noise [" in output]
    assert len(buggy) == len(fixed) == 3
    assert {w for w, _ in buggy} == {"1. 1. 1."}, "the bug: w never moves"
    assert len({noise for _, noise in buggy}) == 1, "the bug: the same key, the same noise"
    assert len({noise for _, noise in fixed}) == 3, "the fix: a fresh key at every step"
    assert all(abs(float(value)) < 0.9 for value in fixed[-1][0].split()), "the fix: w shrinks"
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "jax.random.split(key)" in solution.select_one("div.cell_input").get_text()
