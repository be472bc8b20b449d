"""The claims of docs/checkpoints.md, checked in its script and in the rendered page."""

import re
import tempfile

import orbax.checkpoint as ocp
import pytest
from conftest import floats_after, import_script, run_script, section

PAGE = "checkpoints"
FRAMEWORKS = ["PyTorch", "Flax Linen", "Flax NNX"]


@pytest.fixture(scope="module")
def script():
    return import_script("checkpoints")


def differences(text):
    return floats_after("max |difference| =", text)


def first_and_last_loss(text):
    """The two losses of the line ``uninterrupted: 20 steps, loss A -> B``."""
    (losses,) = re.findall(r"uninterrupted: \d+ steps, loss (\S+) -> (\S+)", text)
    return [float(loss) for loss in losses]


# -- The script --------------------------------------------------------------------------------


def test_the_batch_of_a_step_is_always_the_same():
    assert "the batch of a step, asked for again, is the same: True" in run_script("checkpoints")


def test_pytorch_resumed_run_equals_the_uninterrupted_one():
    out = section(run_script("checkpoints"), "PyTorch")
    resumed = out.split("-- without")[0]
    assert "resumed vs uninterrupted, model: max |difference| = 0.0" in resumed
    assert "resumed vs uninterrupted, adam: max |difference| = 0.0" in resumed
    assert "resumed vs uninterrupted, rng: max |difference| = 0.0" in resumed, "the generator too"
    (before,) = floats_after("first layer before load_state_dict:", out)
    assert before > 0.1, "the fresh model starts elsewhere, so a failed load would show"


def test_pytorch_without_the_optimizer_state_ends_elsewhere():
    out = section(run_script("checkpoints"), "PyTorch").split("-- without optimizer.state_dict():")[1]
    out = out.split("-- without torch.get_rng_state():")[0]
    assert differences(out)[0] > 1e-3
    assert "Adam's step count at the end: 12 (uninterrupted: 20)" in out


def test_pytorch_without_the_generator_state_ends_elsewhere():
    out = section(run_script("checkpoints"), "PyTorch").split("-- without torch.get_rng_state():")[1]
    assert differences(out)[0] > 1e-3, "other dropout masks, other parameters"


def test_linen_resumed_train_state_equals_the_uninterrupted_one():
    out = section(run_script("checkpoints"), "Flax Linen").split("-- restored without a target")[0]
    for field in ["params", "batch_stats", "opt_state", "step", "key"]:
        assert f"resumed vs uninterrupted, {field}: max |difference| = 0.0" in out
    assert "restored: TrainState at step 8" in out
    assert "optimizer state: ['ScaleByAdamState', 'EmptyState']" in out
    assert "saved arrays: {'batch_stats': 2, 'key': 1, 'opt_state': 13, 'params': 6, 'step': 1}" in out
    assert floats_after("first layer before restore:", out)[0] > 0.1


def test_linen_restore_without_a_target_gives_dicts_and_the_step_fails():
    out = section(run_script("checkpoints"), "Flax Linen").split("-- restored without a target:")[1]
    without, abstract = out.split("-- restored into an abstract target")
    assert "restored: dict with ['batch_stats', 'key', 'opt_state', 'params', 'step']" in without
    assert "optimizer state: ['dict', 'NoneType']" in without
    assert "first step raises: AttributeError: 'dict' object has no attribute 'mu'" in without
    assert "optimizer state: ['ScaleByAdamState', 'EmptyState']" in abstract
    assert "one more step, now at step 9" in abstract


def test_nnx_resumed_state_equals_the_uninterrupted_one():
    out = section(run_script("checkpoints"), "Flax NNX")
    assert "resumed vs uninterrupted, model: max |difference| = 0.0" in out
    assert "resumed vs uninterrupted, optimizer: max |difference| = 0.0" in out
    assert "saved arrays: 24" in out, "22 as without Dropout, and its stream's key and count"
    assert floats_after("first layer before nnx.update:", out)[0] > 0.1


def test_the_checkpoint_folder_is_removed():
    assert "checkpoint folder still exists: False" in section(run_script("checkpoints"), "Cleanup")


def test_exercise_keeps_the_last_two_checkpoints():
    out = section(run_script("checkpoints"), "Exercise: CheckpointManager")
    assert "steps kept: [15, 20]" in out
    assert "latest checkpoint vs final state: max |difference| = 0.0" in out


def test_functions_are_importable_and_resume_exactly(script, tmp_path):
    model, optimizer = script.make_nnx(seed=0)
    script.train_nnx(model, optimizer, script.TOTAL_STEPS)
    checkpointer = ocp.StandardCheckpointer()
    try:
        resumed = script.nnx_checkpoint(*script.resume_nnx(checkpointer, tmp_path / "nnx")[:2])
    finally:
        checkpointer.close()
    assert script.max_abs_diff(resumed, script.nnx_checkpoint(model, optimizer)) == 0.0


def test_restoring_without_a_target_fails_with_the_real_error(script, tmp_path):
    checkpointer = ocp.StandardCheckpointer()
    try:
        script.save_linen(checkpointer, tmp_path / "linen")
        raw = checkpointer.restore(tmp_path / "linen")
        assert isinstance(raw, dict)
        state = script.make_linen(seed=1).replace(**raw)
        with pytest.raises(AttributeError, match="'dict' object has no attribute 'mu'"):
            script.linen_step(state, *script.batch(script.SAVE_AT))
        restored = script.restore_linen(checkpointer, tmp_path / "linen")
        script.linen_step(restored, *script.batch(script.SAVE_AT))  # with a target, it trains
    finally:
        checkpointer.close()


def test_max_abs_diff_refuses_different_structures(script):
    with pytest.raises(AssertionError, match="differ in structure"):
        script.max_abs_diff({"a": 1.0}, {"b": 1.0})


# -- The rendered page -------------------------------------------------------------------------


def tab_panels(site):
    """The text of each framework's panel, for each tab-set of the page."""
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    for tab_set in tab_sets:
        assert [label.get_text(strip=True) for label in tab_set.select("label.sd-tab-label")] == FRAMEWORKS
    return [[panel.get_text() for panel in tab_set.select("div.sd-tab-content")] for tab_set in tab_sets]


def test_page_has_three_tab_sets_run_save_restore(site):
    run, save, restore = tab_panels(site)
    assert "torch.save(checkpoint" in save[0]
    assert 'checkpointer.save(root / "linen", state)' in save[1]
    assert "nnx_checkpoint(model, optimizer)" in save[2]
    assert "optimizer.load_state_dict" in restore[0]
    assert 'checkpointer.restore(root / "linen", fresh)' in restore[1]
    assert "nnx.eval_shape" in restore[2] and "nnx.update(optimizer" in restore[2]


def test_page_uninterrupted_runs_are_the_scripts(site):
    run, _, _ = tab_panels(site)
    out = run_script("checkpoints")
    for panel, name in zip(run, FRAMEWORKS, strict=True):
        page_losses = first_and_last_loss(panel)
        assert page_losses == first_and_last_loss(section(out, name))
        assert len(page_losses) == 2 and page_losses[1] < page_losses[0]


def test_page_resumed_runs_equal_the_uninterrupted_ones_in_all_three(site):
    _, _, restore = tab_panels(site)
    counts = {"PyTorch": 3, "Flax Linen": 5, "Flax NNX": 2}
    for panel, name in zip(restore, FRAMEWORKS, strict=True):
        diffs = differences(panel)
        assert diffs == [0.0] * counts[name], name
    assert "after load_state_dict: 0.0" in restore[0]
    assert "restored: TrainState at step 8" in restore[1]
    assert "['ScaleByAdamState', 'EmptyState']" in restore[1]
    assert "ShapeDtypeStruct(shape=(16,), dtype=float32)" in restore[2]
    assert "after nnx.update: 0.0" in restore[2]
    for label in ["load_state_dict:", "restore:", "nnx.update:"]:
        (before,) = floats_after(f"first layer before {label}", "\n".join(restore))
        assert before > 0.1, "the fresh objects start elsewhere"


def test_page_shows_what_each_checkpoint_holds(site):
    _, save, _ = tab_panels(site)
    expected = [
        [
            "1.running_mean",
            "1.num_batches_tracked",
            "exp_avg_sq",
            "step counted for parameter 0: 8.0",
            "rng: torch.uint8",
        ],
        ["batch_stats/BatchNorm_0/mean", "opt_state/0/mu/Dense_0/kernel", "params/Dense_1/bias", "key "],
        [
            "model/norm/var/value",
            "optimizer/opt_state/0/nu/dense1/kernel/value",
            "optimizer/step/value",
            "model/dropout/rngs/key/value",
            "model/dropout/rngs/count/value",
        ],
    ]
    for panel, names in zip(save, expected, strict=True):
        assert all(name in panel for name in names), names
    assert "manifest.ocdbt" in save[1] and "manifest.ocdbt" in save[2]


def test_page_prints_no_temporary_path_and_no_log_or_warning(site):
    outputs = site.outputs(PAGE)
    # tempfile names its folders tmp + 8 characters; the page's must not show (a traceback's venv path may).
    folder = re.compile(re.escape(tempfile.gettempdir()) + r"/tmp\w{8}\b")
    assert not any(folder.search(text) for text in outputs), "the temporary folder's path is printed"
    for cell in site.notebook(PAGE).cells:
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", f"stderr output: {output.get('text', '')[:200]}"
    assert not any("Warning" in text or "WARNING" in text for text in outputs)


def test_page_trap_optimizer_state_shows_the_scripts_numbers(site):
    text = site.output_with(PAGE, "Adam's step count at the end")
    out = section(run_script("checkpoints"), "PyTorch").split("-- without optimizer.state_dict():")[1]
    out = out.split("-- without torch.get_rng_state():")[0]
    assert differences(text) == differences(out)
    assert differences(text)[0] > 1e-3
    assert "Adam's step count at the end: 12 (uninterrupted: 20)" in text


def test_page_trap_random_state_left_out_ends_elsewhere(site):
    (cell,) = [cell for cell in site.soup(PAGE).select("div.cell") if "no-rng.pt" in cell.get_text()]
    assert "torch.set_rng_state" not in cell.select_one("div.cell_input").get_text()
    text = cell.select_one("div.cell_output").get_text()
    out = section(run_script("checkpoints"), "PyTorch").split("-- without torch.get_rng_state():")[1]
    assert differences(text) == differences(out) and differences(text)[0] > 1e-3


def test_page_trap_restore_without_target(site):
    text = site.output_with(PAGE, "expected:")
    assert "restored: dict with ['batch_stats', 'key', 'opt_state', 'params', 'step']" in text
    assert "optimizer state: ['dict', 'NoneType']" in text
    (cell,) = site.soup(PAGE).select("div.cell.tag_raises-exception")
    assert "AttributeError" in cell.get_text()
    assert "'dict' object has no attribute 'mu'" in cell.select_one("div.cell_output").get_text()
    fixed = site.output_with(PAGE, "one more step, now at step")
    assert "target leaf: ShapeDtypeStruct(shape=(16,), dtype=float32" in fixed
    assert "restored: TrainState ['ScaleByAdamState', 'EmptyState']" in fixed
    assert "one more step, now at step 9" in fixed


def test_page_cleans_up_its_folder(site):
    assert "checkpoint folder still exists: False" in site.output_with(PAGE, "checkpoint folder still exists")


def test_page_exercise_solution_is_hidden_and_keeps_the_last_two(site):
    text = site.output_with(PAGE, "steps kept:")
    assert "steps kept: [15, 20]" in text
    assert "latest checkpoint vs final state: max |difference| = 0.0" in text
    assert "folder still exists: False" in text
    (cell,) = site.soup(PAGE).select("div.cell.tag_hide-cell")
    assert cell.find_parent("details") is not None or cell.select_one("details") is not None
    headings = [h.get_text(strip=True).rstrip("#") for h in site.soup(PAGE).select("h2")]
    assert headings.index("Exercise") == headings.index("Summary") - 1
