"""The claims of docs/pytorch-vs-flax.md, checked in its script and in the rendered page."""

import itertools
import sys

from bs4 import BeautifulSoup
from conftest import ROOT, floats_after, run_script, section

PAGE = "pytorch-vs-flax"

# float32 arithmetic in two libraries: same numbers up to rounding, never more than this apart.
TOLERANCE = 1e-5


def is_decreasing(values):
    return all(b < a for a, b in itertools.pairwise(values))


# -- The script ----------------------------------------------------------------------------------


def test_images_are_nhwc_for_flax_and_nchw_for_torch():
    assert "flax images (NHWC): (32, 12, 12, 1) torch images (NCHW): (32, 1, 12, 12)" in run_script(
        "pytorch_vs_flax"
    )


def test_weight_is_out_in_and_kernel_is_in_out():
    out = run_script("pytorch_vs_flax")
    assert "'dense1.weight': (12, 144)" in out and "'dense2.weight': (1, 12)" in out
    assert "'dense1': {'bias': (12,), 'kernel': (144, 12)}" in out
    assert "'dense2': {'bias': (1,), 'kernel': (12, 1)}" in out


def test_setup_and_compact_are_the_same_model():
    out = run_script("pytorch_vs_flax")
    assert "setup and compact: same variables from the same key: True" in out
    assert "setup and compact outputs identical: True" in out


def test_default_initialisations_differ():
    out = run_script("pytorch_vs_flax")
    (torch_std,) = floats_after("torch dense1.weight: std", out)
    (torch_max,) = floats_after("max |w|", out)
    (flax_std,) = floats_after("flax dense1 kernel: std", out)
    assert torch_max <= 1 / 12 + 1e-4, "PyTorch: uniform in +-1/sqrt(in)"
    assert abs(torch_std - 1 / 12 / 3**0.5) < 0.005, "the standard deviation of that uniform"
    assert abs(flax_std - 1 / 12) < 0.005, "Flax: lecun_normal, std 1/sqrt(in)"
    assert "torch dense1.bias all zero: False" in out
    assert "flax dense1 bias all zero: True" in out


def test_copied_weights_give_the_same_outputs_loss_and_gradients():
    out = run_script("pytorch_vs_flax")
    for label in ("initial output:", "(weight.grad.T vs kernel):", "dense1 after the step:"):
        (diff,) = floats_after(label, out)
        assert diff < TOLERANCE, label
    (torch_loss,) = floats_after("torch loss", out.split("== Loss ==")[1].split("==")[0])
    (flax_loss,) = floats_after("flax loss", out.split("== Loss ==")[1].split("==")[0])
    assert abs(torch_loss - flax_loss) < TOLERANCE


def test_losses_as_classes_and_functions_and_what_optax_returns():
    loss = section(run_script("pytorch_vs_flax"), "Loss")
    assert "torch functional mse_loss equals MSELoss: True" in loss
    assert "optax squared_error shape, one per element: (32, 1)" in loss
    assert "optax softmax cross-entropy shape, one per example: (32,)" in loss


def test_torch_steps_in_place_and_optax_returns_new_params():
    out = run_script("pytorch_vs_flax")
    assert "torch weights changed in place: True" in out
    assert "flax new params returned: True" in out
    assert "flax old params untouched: True" in out


def test_losses_decrease_and_match_torch():
    training = run_script("pytorch_vs_flax").split("== Training:")[1]
    torch_losses = floats_after("torch loss", training)
    flax_losses = floats_after("flax loss", training)
    assert len(torch_losses) == len(flax_losses) == 5
    assert is_decreasing(torch_losses) and is_decreasing(flax_losses)
    assert torch_losses[-1] < torch_losses[0] / 2, "the model learns"
    assert all(abs(t - f) < TOLERANCE for t, f in zip(torch_losses, flax_losses, strict=True))
    assert "torch loss decreasing: True" in training and "flax loss decreasing: True" in training
    (diff,) = floats_after("loss over the steps:", training)
    assert diff < TOLERANCE


def test_script_functions_are_importable():
    sys.path.insert(0, str(ROOT / "code"))
    try:
        import pytorch_vs_flax as script
    finally:
        sys.path.remove(str(ROOT / "code"))
    images, _ = script.make_data()
    variables = script.CompactMLP().init(script.jax.random.key(1), images)
    outputs = [module.apply(variables, images) for module in (script.SetupMLP(), script.CompactMLP())]
    assert bool(script.jnp.array_equal(*outputs)), "same variables, same outputs, whatever the key"


# -- The rendered page ---------------------------------------------------------------------------


def parse(site):
    return BeautifulSoup(site.page("pytorch-vs-flax"), "html.parser")


def tab_sets(site):
    """Each tab-set of the page as {tab label: the text of that tab's cell outputs}."""
    result = []
    for tab_set in parse(site).select("div.sd-tab-set"):
        labels = [label.get_text(strip=True) for label in tab_set.select(":scope > label.sd-tab-label")]
        panels = tab_set.select(":scope > div.sd-tab-content")
        result.append(
            {
                label: "\n".join(output.get_text() for output in panel.select("div.cell_output"))
                for label, panel in zip(labels, panels, strict=True)
            }
        )
    return result


def tab_code(site, index):
    """The code of each tab of one tab-set, by label."""
    tab_set = parse(site).select("div.sd-tab-set")[index]
    labels = [label.get_text(strip=True) for label in tab_set.select(":scope > label.sd-tab-label")]
    panels = tab_set.select(":scope > div.sd-tab-content")
    return {
        label: "\n".join(code.get_text() for code in panel.select("div.cell_input"))
        for label, panel in zip(labels, panels, strict=True)
    }


def untabbed_outputs(site):
    """The outputs of the cells outside tab-sets: the comparisons between the two frameworks."""
    return [
        cell.select_one("div.cell_output").get_text()
        for cell in parse(site).select("div.cell:has(div.cell_output)")
        if not cell.find_parent("div", class_="sd-tab-set")
    ]


STEPS = [
    "data",
    "model class",
    "initialisation",
    "forward",
    "loss",
    "gradients",
    "optimizer step",
    "training",
]


def test_page_shows_each_step_as_pytorch_and_linen_tabs(site):
    sets = tab_sets(site)
    assert len(sets) == len(STEPS)
    assert all(list(tabs) == ["PyTorch", "Flax Linen"] for tabs in sets)


def test_page_steps_use_the_matching_apis(site):
    code = {step: tab_code(site, index) for index, step in enumerate(STEPS)}
    assert "def setup(self):" in code["model class"]["Flax Linen"]
    assert "@nn.compact" in code["model class"]["Flax Linen"]
    assert "model.init(jax.random.key(0), images)" in code["initialisation"]["Flax Linen"]
    assert "torch.nn.MSELoss()" in code["loss"]["PyTorch"]
    assert "optax.squared_error" in code["loss"]["Flax Linen"]
    assert "zero_grad()" in code["gradients"]["PyTorch"] and "loss.backward()" in code["gradients"]["PyTorch"]
    assert "jax.value_and_grad(loss_fn)" in code["gradients"]["Flax Linen"]
    assert "torch.optim.SGD" in code["optimizer step"]["PyTorch"]
    assert "optimizer.step()" in code["optimizer step"]["PyTorch"]
    assert "optax.sgd" in code["optimizer step"]["Flax Linen"]
    assert "optax.apply_updates" in code["optimizer step"]["Flax Linen"]


def test_page_shows_transposed_shapes_and_same_loss(site):
    sets = dict(zip(STEPS, tab_sets(site), strict=True))
    assert "'dense1.weight': (12, 144)" in sets["initialisation"]["PyTorch"]
    assert "'kernel': (144, 12)" in sets["initialisation"]["Flax Linen"]
    torch_loss, *torch_lines = sets["loss"]["PyTorch"].strip().splitlines()
    flax_loss, *flax_lines = sets["loss"]["Flax Linen"].strip().splitlines()
    assert torch_loss == flax_loss == "0.870465"
    assert torch_lines == ["the functional form gives the same: True"]
    assert flax_lines == [
        "squared_error, one per element: (32, 1)",
        "softmax cross-entropy, one per example: (32,)",
    ]
    assert "weights changed in place: True" in sets["optimizer step"]["PyTorch"]
    assert "old params untouched: True" in sets["optimizer step"]["Flax Linen"]


def test_page_shows_setup_and_compact_give_identical_outputs(site):
    outputs = untabbed_outputs(site)
    assert any("same variables: True" in output and "same outputs:   True" in output for output in outputs)


def test_page_shows_the_default_initialisations_differ(site):
    (init,) = [output for output in untabbed_outputs(site) if "1/sqrt(144)" in output]
    assert "torch bias all zero: False" in init
    assert "flax bias all zero:  True" in init


def test_page_shows_outputs_gradients_and_weights_agree(site):
    outputs = "\n".join(untabbed_outputs(site))
    for claim in (
        "same outputs: True",
        "same gradients: True",
        "same weights: True",
        "agree within 1e-5: True",
    ):
        assert claim in outputs


def test_page_shows_matching_decreasing_losses(site):
    training = tab_sets(site)[-1]
    assert training["PyTorch"].strip() == training["Flax Linen"].strip()
    (table,) = [output for output in untabbed_outputs(site) if "step 1: torch" in output]
    torch_losses, flax_losses = floats_after("torch", table), floats_after("flax", table)
    assert len(torch_losses) == len(flax_losses) == 5
    assert is_decreasing(torch_losses) and torch_losses == flax_losses


def test_page_ends_with_the_script(site):
    dropdown = parse(site).select("details.sd-dropdown")[-1]
    assert "code/pytorch_vs_flax.py" in dropdown.select_one("summary").get_text()
    assert "def params_from_torch(torch_model):" in dropdown.get_text()


def test_page_exercise_loads_linen_weights_into_pytorch(site):
    out = site.output_with(PAGE, "largest difference below 1e-6:")
    assert "largest difference below 1e-6: True" in out
    torch_row = out.split("PyTorch, first 3 predictions:")[1].splitlines()[0]
    linen_row = out.split("Linen,   first 3 predictions:")[1].splitlines()[0]
    assert torch_row == linen_row and len(torch_row.strip(" []").split()) == 3
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert ".T" in solution.select_one("div.cell_input").get_text(), "weight = kernel.T"
