"""The claims of docs/freezing.md, checked in its script and in the rendered page."""

import re

import numpy as np
import optax
import pytest
import torch
from conftest import floats_after, import_script, run_script, section

PAGE = "freezing"
FRAMEWORKS = ["pytorch", "linen", "nnx"]
TAB_LABELS = ["PyTorch", "Flax Linen", "Flax NNX"]


@pytest.fixture(scope="module")
def script():
    return import_script("freezing")


def out(title):
    return section(run_script("freezing"), title)


def line_starting(text, prefix):
    """The one line of ``text`` that starts with ``prefix``."""
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return line


# -- The script: pretraining and the three fine-tuning runs ------------------------------------------


def test_the_pretrained_body_is_made_by_a_short_pretraining_run():
    text = out("Pretraining")
    first, last = floats_after("pretraining loss: first", text)[0], floats_after(", last", text)[0]
    assert last < first / 10
    assert "accuracy 1.000" in text
    assert "new head: (3, 16) | body from pretraining: True" in text
    assert "task A classes: [278 234] | task B classes: [76 84 96]" in text


def test_each_framework_keeps_the_body_bit_identical_and_moves_the_head():
    text = out("Fine-tuning")
    for name in FRAMEWORKS:
        line = line_starting(text, f"{name}:")
        assert "frozen body bit-identical: True" in line, line
        assert floats_after("head kernel moved by up to", line)[0] > 0.1
        first, last = (float(v) for v in re.findall(r"loss (\d\.\d+) -> (\d\.\d+)", line)[0])
        assert last < first / 2


def test_the_three_trained_heads_agree_within_the_stated_tolerance(script):
    text = out("Fine-tuning")
    assert script.TOLERANCE == 1e-5
    for a, b in [("pytorch", "linen"), ("pytorch", "nnx"), ("linen", "nnx")]:
        label = f"max |{a} - {b}| trained head, kernel and bias:"
        (diff,) = floats_after(label, text)
        assert diff <= 1e-5
        assert f"{label} {diff:.1e}, within 1e-05: True" in text
    (pytorch_vs_linen,) = floats_after("max |pytorch - linen| trained head, kernel and bias:", text)
    assert pytorch_vs_linen > 0, "PyTorch and JAX differ by roundings: the tolerance is needed"
    assert floats_after("max |pytorch - nnx| loss over the 100 steps:", text)[0] <= 1e-5


def test_each_optimizer_keeps_state_for_the_head_only_and_its_bytes():
    text = out("What each optimizer keeps")
    assert "pytorch: parameters with a gradient: ['head.weight', 'head.bias']" in text
    assert "pytorch: optimizer state for: ['head.weight', 'head.bias']" in text
    assert "pytorch: optimizer state bytes: 416" in text
    assert "pytorch: optimizer state bytes, nothing frozen: 6456" in text
    assert "linen: mu at body/dense1/kernel: MaskedNode()" in text
    assert "linen: mu leaves: [\"['head']['bias']\", \"['head']['kernel']\"]" in text
    assert "linen: opt_state bytes: 412" in text
    assert "linen: opt_state bytes, nothing frozen: 6428" in text
    assert "nnx: mu paths: [('head', 'bias'), ('head', 'kernel')]" in text
    assert "nnx: attributes: ['graph', 'opt_state', 'step', 'tx', 'wrt']" in text
    assert "nnx: opt_state bytes: 412 | step: 100" in text
    assert "nnx: opt_state bytes, wrt=nnx.Param: 6428" in text
    assert "numbers: head 51, whole network 803" in text
    # the page's arithmetic: two float32 moments, plus 4-byte step counts (two in PyTorch, one in Optax)
    assert 2 * 51 * 4 + 2 * 4 == 416 and 2 * 51 * 4 + 4 == 412
    assert 2 * 803 * 4 + 8 * 4 == 6456 and 2 * 803 * 4 + 4 == 6428
    assert 6424 / 408 > 15.5


def test_pytorch_adam_state_is_made_only_for_parameters_with_a_gradient(script):
    weights = script.starting_weights(script.pretrain()[0])
    model, optimizer, _ = script.torch_fine_tune(weights, script.adam_torch, num_steps=2)
    state = optimizer.state[model.head.weight]
    assert {k: (tuple(v.shape), v.dtype) for k, v in state.items()} == {
        "step": ((), torch.float32),
        "exp_avg": ((3, 16), torch.float32),
        "exp_avg_sq": ((3, 16), torch.float32),
    }
    assert all(p not in optimizer.state for p in model.body.parameters())


def test_optax_freezing_tools():
    text = out("Optax's freezing tools")
    assert "optax.multi_transform is optax.partition: True" in text
    assert "partition(adam, set_to_zero): opt_state 412 B, frozen body bit-identical: True" in text
    assert "selective_transform(adam): opt_state 412 B, frozen body bit-identical: True" in text
    assert "chain(freeze, adam): opt_state 6428 B, frozen body bit-identical: True" in text
    assert "selective_transform(adam) gives the same parameters as partition: True" in text
    assert "chain(freeze, adam) gives the same parameters as partition: True" in text
    assert "chain(freeze, adam): body moments all zero: True" in text


def test_the_pinned_optax_has_freeze_and_selective_transform():
    """The page uses both; they exist in optax 0.2.8 and multi_transform is only an alias."""
    assert optax.__version__ == "0.2.8"
    assert callable(optax.freeze) and callable(optax.selective_transform)
    assert optax.multi_transform is optax.partition


def test_nnx_wrt_and_diffstate():
    text = out("NNX: wrt and DiffState")
    assert "gradients by default: {'body': ['dense1', 'dense2', 'norm'], 'head': ['bias', 'kernel']}" in text
    assert "gradients with DiffState: {'head': ['bias', 'kernel']}" in text
    assert "all gradients, wrt=head: frozen body bit-identical: True" in text
    assert "all gradients, wrt=head: same head as DiffState: True" in text
    assert "wrt=nnx.Param with head-only gradients raises ValueError: pytree structure error" in text


def test_weight_decay_reaches_the_frozen_body_only_in_the_wrong_order():
    text = out("Pitfall: weight decay")
    wrong = line_starting(text, "linen chain(freeze, adamw)")
    assert "body bit-identical: False" in wrong and floats_after("moved by", wrong)[0] > 0.01
    right = line_starting(text, "linen partition(adamw, set_to_zero)")
    assert right.endswith("body bit-identical: True | dense1 kernel moved by 0.0000")
    assert "linen chain(add_decayed_weights, partition): body bit-identical: True" in text
    # with zero gradients, only the decay acts: each step multiplies the body by 1 - lr * wd
    ratio = floats_after("with chain(freeze, adamw), body kernel / start: from", text)[0]
    assert f"from {ratio:.4f} to {ratio:.4f}" in text
    assert f"(1 - lr x wd)^100: {(1 - 0.01 * 0.1) ** 100:.4f}" in text and f"{ratio:.4f}" == "0.9048"
    assert "pytorch AdamW, body frozen from the start: body bit-identical: True" in text
    assert "nnx adamw, wrt=head: body bit-identical: True" in text
    assert "nnx chain(freeze, adamw), wrt=nnx.Param: body bit-identical: False" in text


def test_pytorch_freezing_midway_depends_on_set_to_none_and_keeps_the_state():
    text = out("Pitfall: weight decay")
    for label in ["SGD with momentum", "AdamW"]:
        kept = f"pytorch {label}, frozen midway, set_to_none=True: body moved by 0.0000 | .grad is None: True"
        assert kept in text
        line = line_starting(text, f"pytorch {label}, frozen midway, set_to_none=False")
        assert floats_after("body moved by", line)[0] > 0.01 and ".grad is None: False" in line
    assert text.count("body parameters with state: 6") == 4


def test_batchnorm_statistics_drift_in_training_mode_in_all_three():
    text = out("Pitfall: BatchNorm statistics in training mode")
    assert "pytorch: parameters bit-identical: True" in text
    assert "num_batches_tracked: 100 -> 110" in text
    assert floats_after("pytorch: eval-mode body output changed by up to", text)[0] > 0.01
    assert "linen: parameters bit-identical: True" in text
    assert "nnx: Param bit-identical: True" in text
    labels = [
        "running_mean moved by up to",
        "batch_stats mean moved by up to",
        "BatchStat mean moved by up to",
    ]
    moved = [floats_after(label, text)[0] for label in labels]
    assert moved[0] > 0.01 and moved[0] == moved[1] == moved[2]


def test_the_exercise_trains_dense2_and_head_only():
    text = out("Exercise")
    assert "dense1 bit-identical: True" in text and "norm bit-identical: True" in text
    assert floats_after("dense2 kernel moved by", text)[0] > 0
    assert floats_after("head kernel by", text)[0] > 0
    numbers = (32 * 16 + 16) + (16 * 3 + 3)
    assert f"opt_state bytes: {2 * numbers * 4 + 4}" in text


def test_labels_follow_the_parameter_tree(script):
    params, _ = script.to_flax(script.starting_weights(script.pretrain()[0]))
    labels = script.freeze_labels(params)
    leaves = [(path, label) for path, label in zip(*_flat(labels), strict=True)]
    assert all(label == ("trained" if path[0] == "head" else "frozen") for path, label in leaves)
    assert sum(label == "trained" for _, label in leaves) == 2


def _flat(tree, prefix=()):
    paths, values = [], []
    for key, value in tree.items():
        if isinstance(value, dict):
            sub_paths, sub_values = _flat(value, (*prefix, key))
            paths += sub_paths
            values += sub_values
        else:
            paths.append((*prefix, key))
            values.append(value)
    return paths, values


def test_flax_weights_are_pytorchs(script):
    weights = script.starting_weights(script.pretrain()[0])
    params, stats = script.to_flax(weights)
    assert np.array_equal(np.asarray(params["head"]["kernel"]), weights["head.weight"].T)
    assert np.array_equal(np.asarray(stats["body"]["norm"]["var"]), weights["body.norm.running_var"])


# -- The rendered page -------------------------------------------------------------------------------


def tab_sets(site):
    return site.soup(PAGE).select("div.sd-tab-set.framework-tabs")


def panels(tab_set):
    return [panel.get_text() for panel in tab_set.select("div.sd-tab-content")]


def test_page_has_four_pytorch_linen_nnx_tab_sets(site):
    sets = tab_sets(site)
    assert len(sets) == 4
    for tab_set in sets:
        labels = [label.get_text(strip=True) for label in tab_set.select("label.sd-tab-label")]
        assert labels == TAB_LABELS


def test_page_fine_tuning_tabs_show_the_scripts_results(site):
    pytorch, linen, nnx = panels(tab_sets(site)[0])
    assert "torch_model.body.requires_grad_(False)" in pytorch and "torch_model.body.eval()" in pytorch
    assert "traverse_util.path_aware_map" in linen and "optax.set_to_zero()" in linen
    assert "optax.partition(" in linen and "train=False" in linen
    assert "wrt=TRAINABLE" in nnx and "nnx.DiffState(0, TRAINABLE)" in nnx
    assert "training: True | body: False | head: True" in pytorch
    assert "body uses running averages: True" in nnx
    script_text = out("Fine-tuning")
    for name, panel in zip(FRAMEWORKS, (pytorch, linen, nnx), strict=True):
        assert "frozen body bit-identical: True" in panel
        line = line_starting(script_text, f"{name}:")
        loss = re.search(r"loss \d\.\d+ -> \d\.\d+", line).group()
        assert loss in panel, (name, loss)


def test_page_agreement_is_the_scripts(site):
    shown = site.output_with(PAGE, "trained head, kernel and bias:")
    agreement = "trained head, kernel and bias"
    script_lines = [line for line in out("Fine-tuning").splitlines() if agreement in line]
    for line in script_lines:
        assert line in shown
    assert "max |pytorch - nnx| loss over the 100 steps:" in shown


def test_page_optimizer_state_tabs(site):
    pytorch, linen, nnx = panels(tab_sets(site)[1])
    assert "optimizer state for: ['head.weight', 'head.bias']" in pytorch
    assert "'step': ((), 'torch.float32')" in pytorch and "'exp_avg': ((3, 16), 'torch.float32')" in pytorch
    assert "optimizer state: 416 B" in pytorch and "optimizer state, nothing frozen: 6456 B" in pytorch
    assert "mu at body/dense1/kernel: MaskedNode()" in linen
    assert "opt_state: 412 B" in linen and "opt_state, nothing frozen: 6428 B" in linen
    assert "wrt: All(OfType(" in nnx and "PathContains('head', exact=True))" in nnx
    assert "attributes: ['graph', 'opt_state', 'step', 'tx', 'wrt']" in nnx
    assert "opt_state: 412 B | step: 100" in nnx and "opt_state, wrt=nnx.Param: 6428 B" in nnx
    numbers = site.output_with(PAGE, "whole network:")
    assert "head: 51 numbers, two float32 moments: 408 B" in numbers
    assert "whole network: 803 numbers, two float32 moments: 6424 B" in numbers


def test_page_optax_tools_and_nnx_sections(site):
    table = site.output_with(PAGE, "optax.multi_transform is optax.partition: True")
    assert re.search(r"partition\(adam, set_to_zero\)\s+opt_state\s+412 B \| body bit-identical: True", table)
    assert re.search(r"selective_transform\(adam\)\s+opt_state\s+412 B \| body bit-identical: True", table)
    assert re.search(r"chain\(freeze, adam\)\s+opt_state\s+6428 B \| body bit-identical: True", table)
    same = site.output_with(PAGE, "gives the same parameters as partition")
    assert same.count(": True") == 3 and "body's moments all zero: True" in same
    grads = site.output_with(PAGE, "gradients with DiffState")
    assert "gradients by default: {'body': ['dense1', 'dense2', 'norm'], 'head': ['bias', 'kernel']}" in grads
    assert "gradients with DiffState: {'head': ['bias', 'kernel']}" in grads
    full = site.output_with(PAGE, "same head as with DiffState")
    assert "frozen body bit-identical: True" in full and "same head as with DiffState: True" in full
    error = site.output_with(PAGE, "pytree structure error")
    expected = "ValueError: pytree structure error: different numbers of pytree children at key path"
    assert error.strip() == expected


def test_page_weight_decay_pitfall(site):
    sets = tab_sets(site)
    pytorch, linen, nnx = panels(sets[2])
    assert "AdamW, body frozen from the start: body bit-identical: True" in pytorch
    assert pytorch.count("set_to_none=True : body moved by 0.0000 | .grad is None: True") == 2
    moved = floats_after("set_to_none=False: body moved by", pytorch)
    assert len(moved) == 2 and min(moved) > 0.01
    assert pytorch.count("body parameters with state: 6") == 4
    script_text = out("Pitfall: weight decay")
    for label, value in zip(["SGD with momentum", "AdamW"], moved, strict=True):
        line = line_starting(script_text, f"pytorch {label}, frozen midway, set_to_none=False")
        assert floats_after("body moved by", line) == [value]
    assert "chain(freeze, adamw): body bit-identical: False" in linen
    assert "partition(adamw, set_to_zero): body bit-identical: True" in linen
    assert "chain(add_decayed_weights, partition): body bit-identical: True" in linen
    assert "body kernel / start kernel from 0.9048 to 0.9048; (1 - lr x wd)^100 = 0.9048" in linen
    assert "adamw, wrt=head: body bit-identical: True" in nnx
    assert "chain(freeze, adamw), wrt=nnx.Param: body bit-identical: False" in nnx


def test_page_batchnorm_pitfall(site):
    pytorch, linen, nnx = panels(tab_sets(site)[3])
    assert "model.train()  # the body too" in pytorch and "model.train()  # the body too" in nnx
    assert 'mutable=["batch_stats"]' in linen and "train=True" in linen
    assert "parameters bit-identical: True" in pytorch and "num_batches_tracked: 100 -> 110" in pytorch
    assert "parameters bit-identical: True" in linen
    assert "Param bit-identical: True" in nnx
    moved = [
        floats_after("running_mean moved by up to", pytorch)[0],
        floats_after("batch_stats mean moved by up to", linen)[0],
        floats_after("BatchStat mean moved by up to", nnx)[0],
    ]
    assert moved[0] > 0.01 and len(set(moved)) == 1
    assert moved[0] == floats_after("running_mean moved by up to", out("Pitfall: BatchNorm"))[0]
    label = "eval-mode body output changed by up to"
    assert floats_after(label, pytorch) == floats_after(label, out("Pitfall: BatchNorm"))


def test_page_exercise_solution(site):
    (solution,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert 'nnx.PathContains("dense2")' in solution.select_one("div.cell_input").get_text()
    text = site.output_with(PAGE, "predicted opt_state")
    assert "dense1 bit-identical: True" in text and "norm bit-identical: True" in text
    assert "trained numbers: 579, predicted opt_state: 4636 B, measured: 4636 B" in text
    label = "dense2 kernel moved by"
    assert floats_after(label, text) == floats_after(label, out("Exercise"))


def test_page_prints_no_warning_path_or_address(site):
    outputs = site.outputs(PAGE)
    assert not any("Warning" in output for output in outputs)
    assert not any(re.search(r"0x[0-9a-f]{6,}", output) for output in outputs)
    assert not any(re.search(r"/tmp/|/work/|/home/|site-packages", output) for output in outputs)


def test_page_ends_with_the_whole_program(site):
    soup = site.soup(PAGE)
    dropdown = soup.select("details.sd-dropdown")[-1]
    assert "code/freezing.py" in dropdown.get_text()
    assert "def main():" in dropdown.get_text()
