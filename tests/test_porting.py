"""The claims of docs/porting.md, checked in its script and in the rendered page."""

import inspect

import numpy as np
import optax
import pytest
import torch
from conftest import floats_after, import_script, run_script, section

PAGE = "porting"
TOLERANCE = 1e-5
N = 16 * 6 * 6  # values behind each channel's batch statistics: batch x 6 x 6 positions


@pytest.fixture(scope="module")
def script():
    return import_script("porting")


@pytest.fixture(scope="module")
def out():
    return run_script("porting")


# -- The script --------------------------------------------------------------------------------


def test_defaults_that_differ(out):
    text = section(out, "Defaults")
    assert "conv padding: PyTorch 0, Linen 'SAME', NNX 'SAME'" in text
    assert "batchnorm momentum: PyTorch 0.1, Linen 0.99, NNX 0.99" in text
    assert "batchnorm epsilon: PyTorch 1e-05, Linen 1e-05, NNX 1e-05" in text
    assert "layernorm epsilon: PyTorch 1e-05, Linen 1e-06, NNX 1e-06" in text
    assert "gelu approximate: PyTorch 'none', Linen True, NNX True" in text
    assert "adamw weight decay: PyTorch 0.01, Linen 0.0001, NNX 0.0001" in text


def test_defaults_set_equal_compute_the_same_and_left_alone_do_not(out):
    text = section(out, "Defaults")
    for name in ["layernorm", "gelu", "adamw"]:
        (with_defaults,) = floats_after(f"{name} max |PyTorch - Flax|: defaults", text)
        (set_equal,) = floats_after("set equal", text.split(f"{name} max")[1].split("\n")[0])
        assert set_equal < 2e-6 and with_defaults > 1e-5, name


def test_the_defaults_come_from_the_signatures(script):
    """Not a table typed by hand: the values follow the libraries' own signatures."""
    assert (
        script.defaults()["adamw weight decay"][1]
        == inspect.signature(optax.adamw).parameters["weight_decay"].default
    )


def test_shapes_of_the_conversion(out):
    text = section(out, "Shapes")
    assert "Linear weight (3, 144) -> kernel (144, 3)" in text
    assert "Conv2d weight (4, 1, 3, 3) -> kernel (3, 3, 1, 4)" in text
    assert "input (16, 1, 8, 8) -> NHWC (16, 8, 8, 1)" in text


def test_flatten_order_needs_the_permutation(out):
    text = section(out, "Flatten order")
    (naive,) = floats_after("weight.T only: max difference", text)
    (permuted,) = floats_after("weight permuted: max difference", text)
    assert naive > 0.1, "a plain transpose gives a wrong model"
    assert permuted < TOLERANCE


def test_running_variance_ratio_is_n_over_n_minus_1(out, script):
    text = section(out, "Running variance")
    assert f"n/(n-1) with n = {N}: {N / (N - 1):.5f}" in text
    ratios = text.split("ratio of the batch parts: [")[1].split("]")[0].split()
    assert ratios == [f"{N / (N - 1):.5f}"] * 4
    torch_var, linen_var, ratio = script.running_variance_ratio()
    np.testing.assert_allclose(ratio, N / (N - 1), rtol=1e-5)
    assert np.all(torch_var > linen_var), "PyTorch adds the larger, unbiased variance"


def test_every_check_is_within_tolerance(out):
    text = section(out, "Equivalence")
    names = [
        "eval-mode outputs",
        "train-mode outputs",
        "loss",
        "gradients",
        "parameters after one step",
        "running mean after one step",
        "running var after one step (converted)",
    ]
    for name in names:
        linen, nnx_d = floats_after("Linen", text.split(f"\n{name}:")[1].split("\n")[0]) + floats_after(
            "NNX", text.split(f"\n{name}:")[1].split("\n")[0]
        )
        assert linen < TOLERANCE and nnx_d < TOLERANCE, name
    (stored,) = floats_after("Linen", text.split("(as stored):")[1].split("\n")[0])
    assert stored > TOLERANCE, "without the conversion the running variances differ"
    (largest,) = floats_after("largest difference over all checks:", text)
    assert 0 < largest < TOLERANCE
    assert "(tolerance 1e-05)" in text
    assert "all within tolerance: True" in text


def test_the_three_curves_coincide(out):
    text = section(out, "Training")
    firsts = floats_after("first", text)
    finals = floats_after("final", text)
    assert len(firsts) == len(finals) == 3
    assert len(set(firsts)) == 1 and len(set(finals)) == 1
    assert finals[0] < firsts[0] / 5, "the loss goes down"
    (gap,) = floats_after("largest difference between the curves:", text)
    assert gap < TOLERANCE
    (eval_gap,) = floats_after("eval-mode outputs after training, PyTorch vs Linen:", text)
    assert eval_gap > TOLERANCE, "the running variances drift apart in training"


def test_conversion_round_trip_of_the_linear_kernel(script):
    weight = np.arange(3 * 144, dtype=np.float32).reshape(3, 144)
    kernel = script.linear_kernel(weight)
    assert kernel.shape == (144, 3)
    # PyTorch's input c*36 + h*6 + w is Flax's input h*24 + w*4 + c
    c, h, w = 2, 1, 5
    np.testing.assert_array_equal(kernel[h * 24 + w * 4 + c], weight[:, c * 36 + h * 6 + w])


def test_converted_gradients_match_the_linen_ones(script):
    checks = script.equivalence_checks()
    assert checks["gradients"][0] < TOLERANCE and checks["gradients"][1] < TOLERANCE


def test_torch_to_flax_ignores_num_batches_tracked(script):
    torch.manual_seed(0)
    variables = script.torch_to_flax(script.TorchCNN().state_dict())
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["batch_stats"]["bn"]) == {"mean", "var"}


# -- The rendered page -------------------------------------------------------------------------


def test_page_shows_the_defaults(site, out):
    text = site.output_with(PAGE, "batchnorm momentum:")
    assert "PyTorch 0.1 | Linen 0.99 | NNX 0.99" in text
    assert "PyTorch 0 | Linen 'SAME' | NNX 'SAME'" in text
    assert "layernorm epsilon:   PyTorch 1e-05 | Linen 1e-06 | NNX 1e-06" in text
    assert "gelu approximate:    PyTorch 'none' | Linen True | NNX True" in text
    assert "adamw weight decay:  PyTorch 0.01 | Linen 0.0001 | NNX 0.0001" in text
    gaps = site.output_with(PAGE, "set equal")
    script_lines = [line for line in section(out, "Defaults").splitlines() if "set equal" in line]
    for line in script_lines:
        name, rest = line.split(" max ")
        assert f"{name:9} max {rest}" in gaps, "the page and the script measure the same gaps"


def test_page_shows_the_flatten_order_and_its_fix(site, out):
    text = site.output_with(PAGE, "PyTorch flattens NCHW")
    assert "[0 1 2 3 4 5 6 7]" in text and "[0 4 1 5 2 6 3 7]" in text
    text = site.output_with(PAGE, "weight.T only:")
    assert floats_after("weight.T only:   max difference", text) == floats_after(
        "weight.T only: max difference", out
    )
    (permuted,) = floats_after("weight permuted: max difference", text)
    assert permuted < TOLERANCE


def test_page_loads_the_same_outputs_into_linen_and_nnx(site):
    outputs = site.outputs(PAGE)
    i = next(i for i, text in enumerate(outputs) if "weight permuted" in text)
    linen, nnx_out, pytorch = (text.strip() for text in outputs[i + 1 : i + 4])
    assert linen == nnx_out == pytorch and linen.startswith("[")


def test_page_shows_the_variance_ratio(site):
    text = site.output_with(PAGE, "ratio of the batch parts")
    assert f"n/(n-1) with n = {N}: {N / (N - 1):.5f}" in text
    assert text.split("ratio of the batch parts: [")[1].split("]")[0].split() == [f"{N / (N - 1):.5f}"] * 4


def test_page_asserts_every_check_within_tolerance(site, out):
    text = site.output_with(PAGE, "largest difference over all checks")
    lines = [line for line in text.splitlines() if "Linen" in line]
    assert len(lines) == 7
    for line in lines:
        assert max(floats_after("Linen", line) + floats_after("NNX", line)) < TOLERANCE, line
    page_line = next(line for line in text.splitlines() if line.startswith("largest difference"))
    script_line = next(line for line in out.splitlines() if line.startswith("largest difference over"))
    assert page_line == script_line, "the page and the script measure the same"
    (stored,) = floats_after("as stored (not a check):", text)
    assert stored > TOLERANCE


def test_page_one_step_losses_agree(site):
    losses = [floats_after("loss", text) for text in site.outputs(PAGE) if text.strip().startswith("loss ")]
    assert len(losses) == 3 and losses[0] == losses[1] == losses[2]


def test_page_trains_as_the_script_does(site, out):
    text = site.output_with(PAGE, "largest difference between the curves")
    script_text = section(out, "Training")
    assert floats_after("final", text) == floats_after("final", script_text)
    assert floats_after("first", text) == floats_after("first", script_text)
    (gap,) = floats_after("largest difference between the curves:", text)
    assert gap < TOLERANCE
    eval_text = site.output_with(PAGE, "eval-mode outputs after training")
    assert floats_after("PyTorch vs Linen:", eval_text) == floats_after("PyTorch vs Linen:", script_text)


def test_page_plot_has_alt_text_that_matches_the_run(site, out):
    (image,) = site.soup(PAGE).select("div.cell_output img")
    alt = image.get("alt", "")
    assert all(name in alt for name in ("PyTorch", "Linen", "NNX"))
    (first, *_) = floats_after("PyTorch loss: first", out)
    (final, *_) = floats_after("final", section(out, "Training"))
    assert f"{first:.2f}" in alt and f"{final:.2f}" in alt, "the alt text describes this run"


def test_page_exercise_solution_round_trips(site):
    text = site.output_with(PAGE, "round trip Flax -> PyTorch -> Flax")
    assert "gives the same arrays: True" in text
    (d,) = floats_after("restored PyTorch vs Linen:", text)
    assert d < TOLERANCE
    (cell,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "flax_to_torch" in cell.get_text()


def test_page_prose_quotes_the_measured_numbers(site):
    """The tolerance paragraph quotes three measured differences; they must be the ones on the page."""
    text = site.soup(PAGE).get_text()
    assert "the flatten trap gives 0.85, and the variance convention 1.1e-4 after a single step" in text
    assert "(7.4e-3 after 30)" in text
    (naive,) = floats_after("weight.T only:   max difference", site.output_with(PAGE, "weight.T only"))
    assert f"{naive:.2f}" == "0.85"
    (stored,) = floats_after("as stored (not a check):", site.output_with(PAGE, "as stored (not a check)"))
    assert f"{stored:.1e}" == "1.1e-04"
    (largest,) = floats_after("over all checks:", site.output_with(PAGE, "over all checks"))
    assert largest * 10 < TOLERANCE, "the prose says every check passes with a margin of more than ten"
    (after,) = floats_after("PyTorch vs Linen:", site.output_with(PAGE, "eval-mode outputs after training"))
    assert f"{after:.1e}" == "7.4e-03"
