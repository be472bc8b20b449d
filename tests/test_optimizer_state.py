"""The claims of docs/optimizer-state.md, checked in its script and in the rendered page."""

import math
import re

import jax.numpy as jnp
import optax
import pytest
import torch
from conftest import floats_after, import_script, run_script, section

PAGE = "optimizer-state"
FRAMEWORKS = ["PyTorch", "Flax Linen", "Flax NNX"]
TOLERANCE = 1e-6  # the page's bound for accumulated versus whole-batch parameters
# The cosine from 0.01 to 0 over 10 steps, as the page prints it: the rate of each step, 5 decimals.
COSINE = [0.01 * (1 + math.cos(math.pi * step / 10)) / 2 for step in range(10)]
RATES = " ".join(f"{rate:.5f}" for rate in COSINE)
# micro-batch, mini_step, gradient_step, Adam count, step counter, weights moved, acc_grads = 0
TABLE_ROWS = [
    ["1", "1", "0", "0", "1", "False", "False"],
    ["2", "2", "0", "0", "2", "False", "False"],
    ["3", "3", "0", "0", "3", "False", "False"],
    ["4", "0", "1", "1", "4", "True", "True"],
]


@pytest.fixture(scope="module")
def script():
    return import_script("optimizer_state")


def out(title=None):
    text = run_script("optimizer_state")
    return section(text, title) if title else text


def line_value(label, text):
    """The number after ``label`` on the one line that starts with it."""
    (value,) = re.findall(rf"^{re.escape(label)}\s*(\S+)$", text, re.M)
    return float(value)


def table_rows(text):
    """The rows of an accumulation table: lines that start with a micro-batch number, split into cells."""
    return [line.split() for line in text.splitlines() if re.match(r"\s+[1-4]\s+\d", line)]


# -- The script: gradient accumulation ------------------------------------------------------------


def test_the_frameworks_draw_different_initial_weights():
    rows = [line for line in out("Initial weights").splitlines() if "first row" in line]
    assert [row.split()[0] for row in rows] == ["PyTorch", "Linen", "NNX"]
    assert len({row.split(":")[1] for row in rows}) == 3


def test_accumulated_equals_whole_batch_within_the_tolerance_but_not_bit_for_bit():
    text = out()
    differences = floats_after("max |accumulated - whole-batch| parameter after 3 steps:", text)
    assert len(differences) == 3
    assert all(0 < difference < TOLERANCE for difference in differences), differences
    gradient = line_value("max |accumulated - whole-batch| gradient:", out("Gradient accumulation: PyTorch"))
    assert 0 < gradient < TOLERANCE
    assert "accumulated equals whole batch within 1e-06 in all three: True" in text


def test_pytorch_accumulates_in_grad_and_zero_grad_releases_it():
    text = out("Gradient accumulation: PyTorch")
    assert "bytes of .grad held between micro-batches: 456" in text
    assert "bytes of the parameters: 456" in text
    assert ".grad after zero_grad(): {None}" in text
    assert "Adam's step count: 3.0" in text, "one Adam step per batch of four micro-batches"


@pytest.mark.parametrize(("framework", "counter"), [("Linen", "TrainState.step"), ("NNX", "optimizer.step")])
def test_multisteps_state_and_its_counters(framework, counter):
    text = out(f"Gradient accumulation: {framework}")
    prefix = "opt_state/" if framework == "NNX" else ""
    for leaf in ["mini_step", "gradient_step", "inner_opt_state/0/count"]:
        assert re.search(rf"^  {prefix}{re.escape(leaf)}\s+int32\[\]$", text, re.M), leaf
    assert re.search(rf"^  {prefix}acc_grads/dense1/kernel\s+float32\[4, 16\]$", text, re.M)
    assert table_rows(text) == TABLE_ROWS
    assert f"after 12 micro-batches: gradient_step 3  Adam count 3  {counter} 12" in text


def test_multisteps_keeps_the_mean_of_the_micro_batch_gradients():
    (difference,) = floats_after(
        "max |acc_grads after 3 micro-batches - mean of their gradients|:",
        out("Gradient accumulation: Linen"),
    )
    assert difference < TOLERANCE


def test_multisteps_would_sum_without_use_grad_mean():
    """'By default a mean, not a sum': the other setting sums, so the default is a real choice."""
    params = {"w": jnp.zeros(2)}
    grads = [{"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, 6.0])}]
    accumulated = {}
    for use_grad_mean in (True, False):
        tx = optax.MultiSteps(optax.sgd(0.1), every_k_schedule=3, use_grad_mean=use_grad_mean)
        state = tx.init(params)
        for grad in grads:
            _, state = tx.update(grad, state, params)
        accumulated[use_grad_mean] = state.acc_grads["w"].tolist()
    assert accumulated == {True: [2.0, 4.0], False: [4.0, 8.0]}


def test_the_accumulator_costs_one_copy_of_the_parameters():
    for framework in ["Linen", "NNX"]:
        text = out(f"Gradient accumulation: {framework}")
        assert "bytes of acc_grads: 456  of the parameters: 456" in text
        assert "bytes of opt_state: Adam alone 916  MultiSteps(Adam) 1380" in text
    assert 1380 - 916 == 456 + 2 * 4, "the accumulator and two int32 counters"


def test_batchnorm_breaks_the_equality():
    text = out("Gradient accumulation: PyTorch")
    (with_norm,) = floats_after("with BatchNorm, max |accumulated - whole-batch| gradient:", text)
    without = line_value("max |accumulated - whole-batch| gradient:", text)
    assert with_norm > 1e-2 and with_norm > 1e5 * without


# -- The script: schedules -------------------------------------------------------------------------


def test_the_three_follow_the_same_cosine():
    text = out("Learning-rate schedules")
    for framework in ["PyTorch", "Linen", "NNX"]:
        assert f"{framework} rates used: {RATES}" in text
    (torch_vs_optax,) = floats_after("max |PyTorch - Optax| rate:", text)
    (linen_vs_nnx,) = floats_after("max |Linen - NNX| rate:", text)
    assert 0 < torch_vs_optax < 1e-8 and 0 < linen_vs_nnx < 1e-8, "float32 rounding, not a different curve"


def test_where_each_framework_keeps_the_schedules_position():
    text = out("Learning-rate schedules")
    assert "'last_epoch': 10" in text and "'base_lrs': [0.01]" in text
    assert "PyTorch after 10 steps, param_groups[0]: lr 0.000000, initial_lr 0.01" in text, (
        "the next step's rate"
    )
    assert "Linen opt_state: ['ScaleByAdamState', 'ScaleByScheduleState']" in text
    assert re.search(r"^  1/count\s+int32\[\]$", text, re.M), "the schedule's count of its own"
    assert "Linen Adam count: 10  schedule count: 10" in text
    assert not re.search(r"^  [01]/.*(learning_rate|lr)", text, re.M), "adam(schedule) stores no rate"
    assert "NNX opt_state: InjectStatefulHyperparamsState" in text
    assert re.search(r"^  opt_state/hyperparams/learning_rate\s+float32\[\]$", text, re.M)
    assert re.search(r"^  opt_state/hyperparams_states/learning_rate/count\s+int32\[\]$", text, re.M)
    assert "NNX after 10 steps, hyperparams['learning_rate']: 0.000245" in text, "the last step's rate"
    assert f"{COSINE[-1]:.6f}" == "0.000245"


def test_a_written_rate_is_used_unless_a_schedule_overwrites_it():
    text = out("Changing the rate by hand")
    assert "PyTorch, lr written 0.001: largest change of a weight 0.001000" in text
    assert "Linen, lr written 0.001: largest change of a weight 0.001000" in text
    assert (
        "NNX constant, lr written 0.001: rate after the step 0.001000, largest change of a weight 0.001000"
        in text
    )
    assert (
        "NNX scheduled, lr written 0.001: rate after the step 0.010000, largest change of a weight 0.010000"
        in text
    )


# -- The script: resuming --------------------------------------------------------------------------


def test_only_the_complete_restore_follows_the_schedule():
    text = out("Resuming")
    rest = " ".join(RATES.split()[4:])
    assert re.findall(r"(\w+) restored (.+?): .*same rates (\w+), same weights (\w+)", text) == [
        ("PyTorch", "model", "False", "False"),
        ("PyTorch", "model + optimizer", "False", "False"),
        ("PyTorch", "model + scheduler", "False", "False"),
        ("PyTorch", "model + optimizer + scheduler", "True", "True"),
        ("Linen", "params only", "False", "False"),
        ("Linen", "whole TrainState", "True", "True"),
        ("NNX", "model", "False", "False"),
        ("NNX", "model + optimizer", "True", "True"),
    ]
    assert text.count(f"rates {rest}, same rates True") == 3
    fresh = " ".join(RATES.split()[:6])
    assert text.count(f"rates {fresh},") == 3, "a fresh optimizer state starts the schedule again"


def test_pytorch_half_restores_disagree_with_themselves():
    text = out("Resuming")
    assert "restored model + optimizer: lr now 0.00655, get_last_lr() 0.01000, rates 0.00655 " in text
    assert "restored model + scheduler: lr now 0.01000, get_last_lr() 0.00655, rates 0.01000 " in text


def test_scheduler_load_state_dict_does_not_touch_the_optimizer(script):
    """The trap, on the real objects: last_epoch and get_last_lr() come back, the optimizer's lr does not."""
    model, optimizer, scheduler = script.torch_training()
    script.torch_train(model, optimizer, scheduler, range(4))
    saved = scheduler.state_dict()
    _, fresh_optimizer, fresh_scheduler = script.torch_training(seed=1)
    fresh_scheduler.load_state_dict(saved)
    assert fresh_scheduler.last_epoch == 4
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr() != [0.01]
    assert fresh_optimizer.param_groups[0]["lr"] == 0.01


# -- The script: EMA -------------------------------------------------------------------------------


def test_averaged_model_copies_first_and_copies_buffers_by_default():
    text = out("EMA of the weights")
    assert "PyTorch n_averaged before training: 0" in text
    assert "PyTorch after the first update_parameters(), average == weights: True" in text
    assert "PyTorch n_averaged after training: 100" in text
    assert "PyTorch average == weights now: False" in text
    assert "PyTorch running_mean == the model's, default use_buffers=False: True" in text
    assert "PyTorch running_mean == the model's, use_buffers=True: False" in text
    assert "PyTorch average's parameters: {'Parameter'} requires_grad {True}" in text


def test_no_moments_for_the_average_in_linen_and_nnx():
    text = out("EMA of the weights")
    assert "Linen arrays: params 6  ema_params 6  Adam's mu 6  Adam's nu 6" in text
    assert "NNX kind of the averaged kernel: EMAParam" in text
    assert "NNX Adam's moments cover: ['model']" in text
    assert "NNX BatchNorm mean == the model's: True  the same Variable: False" in text


def test_the_average_evaluates_better_in_all_three():
    text = out("EMA of the weights")
    for framework in ["PyTorch", "Linen", "NNX"]:
        found = re.findall(rf"{framework} test, (\w+): loss ([\d.]+), accuracy ([\d.]+)", text)
        results = {label: (float(loss), float(accuracy)) for label, loss, accuracy in found}
        assert sorted(results) == ["average", "weights"]
        assert results["average"][0] < results["weights"][0], framework
        assert results["average"][1] > results["weights"][1], framework
        assert f"{framework} average has the lower test loss: True" in text


def test_0_9_to_the_100_is_about_3e_5():
    assert f"{0.9**100:.0e}" == "3e-05"


def test_nnx_ema_keeps_params_and_an_optimizer_would_train_them():
    text = out("EMA of the weights")
    assert "nnx.EMA(model) keeps: ['BatchStat', 'Param']" in text
    assert "nnx.EMA(model, only=nnx.Param) keeps: ['Param']" in text
    assert "keeps moments for: ['ema', 'model']" in text


def test_optax_ema_averages_the_steps_not_the_weights():
    text = out("EMA of the weights")
    assert "optax.ema's state: EmaState ('count', 'ema')" in text
    (weights, average) = [
        float(v) for v in re.findall(r"weights ([\d.]+), optax.ema's average ([\d.]+)", text)[0]
    ]
    assert average < 0.01 < weights, "the size of a step (lr 0.01), not of a weight"
    (difference,) = floats_after("max |step 3 taken - debiased average|:", text)
    assert difference < TOLERANCE
    assert "weights after 3 steps equal plain Adam's: False" in text


def test_averaged_model_is_not_in_the_models_optimizer(script):
    """What keeps PyTorch's average untrained is the parameter list the optimizer was given."""
    torch.manual_seed(0)
    model = script.TorchMLP(norm=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    averaged = torch.optim.swa_utils.AveragedModel(model)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not in_optimizer & {id(p) for p in averaged.parameters()}


# -- The script: the exercise ----------------------------------------------------------------------


def test_the_schedule_inside_multisteps_counts_real_steps():
    text = out("Exercise")
    assert "optimizer.step: 12" in text
    assert "schedule count: 3" in text
    assert f"rate of the last real step: {COSINE[2]:.6f}, schedule(2) = {COSINE[2]:.6f}" in text


# -- The rendered page -----------------------------------------------------------------------------


def tab_sets(site):
    return site.soup(PAGE).select("div.sd-tab-set.framework-tabs")


def panels(tab_set):
    return [panel.get_text() for panel in tab_set.select("div.sd-tab-content")]


def test_page_has_six_tab_sets_of_three_frameworks(site):
    sets = tab_sets(site)
    assert len(sets) == 6
    for tab_set in sets:
        assert [label.get_text(strip=True) for label in tab_set.select("label.sd-tab-label")] == FRAMEWORKS


def test_page_initial_weights_are_the_scripts(site):
    panel_rows = [line.split(":")[1] for panel in panels(tab_sets(site)[0]) for line in panel.splitlines()
                  if line.startswith("dense1 kernel, first row:")]  # fmt: skip
    script_rows = [line.split(":")[1] for line in out("Initial weights").splitlines() if "first row" in line]
    assert panel_rows == script_rows and len(set(panel_rows)) == 3


def test_page_accumulation_tabs_show_the_scripts_tables(site):
    pytorch, linen, nnx = panels(tab_sets(site)[1])
    assert "(torch_loss(accumulating, x_micro, y_micro) / NUM_MICRO).backward()" in pytorch
    assert "optax.MultiSteps(optax.adam(LEARNING_RATE), every_k_schedule=NUM_MICRO)" in linen
    assert "nnx.Optimizer(model, accumulate, wrt=nnx.Param)" in nnx
    for panel, framework in [(linen, "Linen"), (nnx, "NNX")]:
        script_text = out(f"Gradient accumulation: {framework}")
        assert table_rows(panel) == table_rows(script_text) == TABLE_ROWS
        for line in script_text.splitlines():
            if line.startswith(("after 12 micro-batches", "bytes of", "max |")):
                assert line in panel, line
    for line in out("Gradient accumulation: PyTorch").splitlines()[1:7]:
        assert line in pytorch, line


def test_page_states_the_tolerance_and_the_numbers_of_its_outputs(site):
    page = site.soup(PAGE).get_text()
    assert "far below the 1e-6 this page asserts" in page
    assert "1,380" in page and "916" in page and "456 bytes" in page
    bn = site.output_with(PAGE, "with BatchNorm")
    assert "5.5e-02" in bn and "A difference of 5e-2 where the model without BatchNorm gave 3e-8" in page


def test_page_schedule_tabs_and_table(site):
    pytorch, linen, nnx = panels(tab_sets(site)[2])
    for panel in (pytorch, linen, nnx):
        assert f"rates used: {RATES}" in panel
    assert "'last_epoch': 10" in pytorch and "lr 0.000000" in pytorch
    assert "['ScaleByAdamState', 'ScaleByScheduleState']" in linen
    assert "hyperparams['learning_rate']: 0.000245" in nnx
    table = site.output_with(PAGE, "max |PyTorch - Optax| rate:")
    rows = [line.split() for line in table.splitlines() if re.match(r"\s*\d+\s+0\.", line)]
    assert [row[1:] for row in rows] == [[f"{rate:.6f}"] * 3 for rate in COSINE]


def test_page_rate_written_by_hand(site):
    for panel in panels(tab_sets(site)[3]):
        assert "largest change of a weight: 0.001000" in panel
    overwritten = site.output_with(PAGE, "rate written before the step")
    assert "rate in hyperparams after it: 0.01" in overwritten
    assert "largest change of a weight: 0.010000" in overwritten


def test_page_resume_tables_are_the_scripts(site):
    pytorch, linen, nnx = panels(tab_sets(site)[4])
    row = r"(\w+) restored (.+?): (?:lr now (\S+), get_last_lr\(\) (\S+), )?rates ([\d. ]+), "
    row += r"same rates (\w+), same weights (\w+)"
    script_rows = re.findall(row, out("Resuming"))
    panel_of = {"PyTorch": pytorch, "Linen": linen, "NNX": nnx}
    for framework, label, lr_now, last_lr, rates, same_rates, same_weights in script_rows:
        cells = [label, lr_now, last_lr, rates, same_rates, same_weights]
        pattern = r"\s+".join(re.escape(cell) for cell in cells if cell)
        assert re.search(pattern, panel_of[framework]), (framework, label)


def test_page_ema_tabs_match_the_script(site):
    pytorch, linen, nnx = panels(tab_sets(site)[5])
    text = out("EMA of the weights")
    for framework, panel in [("PyTorch", pytorch), ("Linen", linen), ("NNX", nnx)]:
        for label in ("weights", "average"):
            (line,) = re.findall(rf"{framework} test, {label}: (loss .*)", text)
            assert f"test, {label}: {line}" in panel, (framework, label)
    assert "running_mean == the model's, default use_buffers=False: True" in pytorch
    assert "running_mean == the model's, use_buffers=True: False" in pytorch
    assert "arrays: params 6  ema_params 6  Adam's mu 6  Adam's nu 6" in linen
    assert "Adam's moments cover: ['model']" in nnx and "kind of the averaged kernel: EMAParam" in nnx
    assert "class EMAParam(nnx.Variable):" in nnx


def test_page_nnx_ema_and_optax_ema(site):
    builtin = site.output_with(PAGE, "nnx.EMA(model) keeps:")
    assert "['BatchStat', 'Param']" in builtin and "keeps moments for: ['ema', 'model']" in builtin
    optax_ema = site.output_with(PAGE, "optax.ema's state:")
    for line in out("EMA of the weights").splitlines():
        if line.startswith(("mean |value|", "max |step 3", "weights after 3 steps")):
            assert line in optax_ema, line


def test_page_exercise_solution_is_hidden_and_checked(site):
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert "assert" in solution.select_one("div.cell_input").get_text()
    output = site.output_with(PAGE, "rate of the last real step")
    assert output.split() == [
        *"optimizer.step: 12".split(),
        *"schedule count: 3".split(),
        *f"rate of the last real step: {COSINE[2]:.6f}, schedule(2) = {COSINE[2]:.6f}".split(),
    ]


def test_page_prints_no_path_address_or_warning(site):
    for output in site.outputs(PAGE):
        assert not re.search(r"0x[0-9a-f]{6,}", output)
        assert "/tmp" not in output and "site-packages" not in output
        assert "Warning" not in output
