"""The claims of docs/sharded-checkpoints.md, checked in its script and in the rendered page."""

import subprocess
import sys

from conftest import (
    ROOT,
    assert_no_machine_paths,
    floats_after,
    rank_output,
    run_script,
    section,
    written_program,
)

PAGE = "sharded-checkpoints"


def out():
    return run_script("sharded_checkpoints")


# -- The script: Orbax ---------------------------------------------------------------------------------


def test_orbax_saves_from_all_eight_devices_with_global_shapes():
    text = section(out(), "Orbax: save on 8 devices")
    assert "saved from devices: [0, 1, 2, 3, 4, 5, 6, 7]" in text
    assert "batch stats saved as: P('model',)" in text, "the training step split them over model"
    assert "'_sharding'" in text and "'manifest.ocdbt'" in text
    assert "stored dense1 kernel: (16, 32)" in text


def test_eval_shape_leaves_sit_on_an_abstract_mesh_that_cannot_place_blocks():
    text = section(out(), "Orbax: restore on 4 devices")
    assert "eval_shape leaf mesh: AbstractMesh" in text
    assert "devices_indices_map on the eval_shape leaf raises: ValueError" in text
    assert "target dense1 kernel blocks: {0: ((None, None), (0, 16)), 1: ((None, None), (16, 32))," in text
    assert "same shardings as nnx.get_abstract_model: True" in text
    assert "dense2/bias, no annotation: here P(None,) nnx.get_abstract_model P()" in text


def test_restored_on_four_devices_it_continues_to_the_uninterrupted_parameters():
    text = section(out(), "Orbax: restore on 4 devices")
    assert "restored onto devices: [0, 1, 2, 3]" in text
    assert "dense1/kernel P(None, 'model')" in text
    assert "norm/mean P(None,)" in text, "the target decides: saved split over model, restored whole"
    assert "optimizer step after restore: 3" in text
    for part in ["model", "optimizer"]:
        (difference,) = floats_after(f"uninterrupted on 8| {part}:", text)
        assert difference < 1e-6


def test_a_target_without_the_optimizer_is_refused():
    text = section(out(), "Orbax: a target that does not match")
    assert "restore into a target without the optimizer raises: ValueError" in text
    assert (
        "saved: ['model', 'optimizer'] model: ['dense1', 'dense2', 'norm'] optimizer: ['opt_state', 'step']"
        in text
    )


def test_a_partial_restore_reads_the_model_alone_through_pytree_restore():
    text = section(out(), "Orbax: a target that does not match")
    assert "StandardCheckpointer.restore takes partial_restore: False" in text
    assert "partial restore: ['model'] onto devices [0, 1, 2, 3]" in text
    assert floats_after("max |partial restore - saved| model:", text) == [0.0]


ABSTRACT_RESTORE = """
import sys, tempfile
from pathlib import Path
import sharded_checkpoints as script, sharded_state as common
import jax, orbax.checkpoint as ocp
from flax import nnx

common.use_eight_cpu_devices()

mesh8 = jax.make_mesh((2, 4), ("data", "model"))
mesh4 = jax.make_mesh((2, 2), ("data", "model"), devices=jax.devices()[:4])
model, optimizer = script.create(mesh8)
checkpointer = ocp.StandardCheckpointer()
with tempfile.TemporaryDirectory() as folder:
    checkpointer.save(Path(folder) / "nnx", {"model": nnx.state(model), "optimizer": nnx.state(optimizer)})
    checkpointer.wait_until_finished()
    abstract_model, abstract_optimizer = script.abstract(mesh4)
    target = {"model": nnx.state(abstract_model), "optimizer": nnx.state(abstract_optimizer)}
    restored = checkpointer.restore(Path(folder) / "nnx", script.on_mesh(target, mesh4))
    difference = common.max_difference(restored["model"], nnx.state(model))
    print("fixed target:", script.devices_of(restored), difference)
    model_only = {"model": script.on_mesh(target, mesh4)["model"]}
    try:  # a partial restore without restore_args, which would carry the target's shardings
        args = ocp.args.PyTreeRestore(item=model_only, partial_restore=True)
        ocp.PyTreeCheckpointer().restore(Path(folder) / "nnx", args=args)
    except UserWarning as warning:  # -W error::UserWarning
        print("partial restore without restore_args:", warning)
    try:
        checkpointer.restore(Path(folder) / "nnx", target)
    except ValueError as error:
        print("eval_shape target:", error)
"""


def test_orbax_refuses_the_eval_shape_target_itself():
    """The page says restore() stops with devices_indices_map's ValueError: here it is, from Orbax; and
    that PyTreeRestore takes the target's shardings from its restore arguments.

    In a process of its own: it needs 8 JAX devices, and Orbax 0.12.8 may print errors from the reads it
    left running when the restore failed."""
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", ABSTRACT_RESTORE],
        cwd=ROOT / "code",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "fixed target: [0, 1, 2, 3] 0.0" in done.stdout
    assert (  # the page: restore arguments carry the target's shardings into PyTreeRestore
        "partial restore without restore_args: Sharding info not provided when restoring. Populating sharding"
        " info from sharding file." in done.stdout
    )
    assert (
        "eval_shape target: _device_assignment is not implemented for `jax.sharding.AbstractMesh`"
        in done.stdout
    )


# -- The script: DCP -------------------------------------------------------------------------------------


def test_dcp_writes_one_file_per_rank_and_four_ranks_resume_exactly():
    text = section(out(), "DCP: save on 2 ranks, load on 4")
    assert "rows 0-15" in rank_output(text, 0) and "rows 16-31" in rank_output(text, 1)
    assert "files: ['.metadata', '__0_0.distcp', '__1_0.distcp']" in text
    assert "stored model.0.weight: (32, 16)" in rank_output(text, 0), "the metadata keeps the global shape"
    assert "stored model.0.weight" not in rank_output(text, 1)
    for rank in range(4):
        lines = rank_output(text, rank)
        assert "0.weight local (8, 16) of (32, 16), Adam step 3" in lines
        (difference,) = floats_after("one process, uninterrupted|:", lines)
        assert difference < 1e-6
    assert "rank 4 |" not in text


def test_the_checkpoint_folder_is_removed():
    assert "checkpoint folder still exists: False" in section(out(), "Cleanup")


# -- The rendered page -----------------------------------------------------------------------------------


def test_page_tabs_save_and_restore_side_by_side(site):
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    labels = [[label.get_text(strip=True) for label in t.select("label.sd-tab-label")] for t in tab_sets]
    assert labels == [["PyTorch", "Flax NNX"], ["PyTorch", "Flax NNX"]]
    save, restore = ([tab.get_text() for tab in t.select("div.sd-tab-content")] for t in tab_sets)
    assert "rows 0-15" in save[0] and "rows 16-31" in save[0] and "__1_0.distcp" in save[0]
    assert "rank 0 | stored model.0.weight: (32, 16)" in save[0]
    assert "saved from devices: [0, 1, 2, 3, 4, 5, 6, 7]" in save[1]
    assert "batch stats saved as: P('model',)" in save[1] and "stored dense1 kernel: (16, 32)" in save[1]
    restored = restore[1]
    for line in ["dense1/kernel  P(None, 'model')", "norm/mean      P(None,)", "norm/var       P(None,)"]:
        assert line in restored
    assert restore[0].count("0.weight local (8, 16) of (32, 16), Adam step 3") == 4
    assert all(d < 1e-6 for d in floats_after("one process, uninterrupted|:", restore[0]))
    assert "restored onto devices: [0, 1, 2, 3]" in restore[1]
    assert "optimizer step after restore: 3" in restore[1]
    differences = floats_after(
        "uninterrupted on 8|", restore[1].replace("model:", "").replace("optimizer:", "")
    )
    assert len(differences) == 2 and max(differences) < 1e-6
    assert restore[1].count("(within 1e-05: True)") == 2


def test_page_shows_the_abstract_mesh_and_its_fix(site):
    text = site.output_with(PAGE, "mesh: AbstractMesh")
    assert "ShapeDtypeStruct (16, 32) P(None, 'model')" in text
    fixed = site.output_with(PAGE, "mesh: Mesh")
    assert "device 0: rows 0-15, cols 0-15" in fixed and "device 3: rows 0-15, cols 16-31" in fixed
    same = site.output_with(PAGE, "same shardings")
    assert "same shardings as nnx.get_abstract_model: True" in same
    assert "dense2/bias: here P(None,) | nnx.get_abstract_model P()" in same


def test_page_partial_restore_and_the_saved_tree(site):
    text = site.output_with(PAGE, "partial restore:")
    assert "StandardCheckpointer.restore takes partial_restore: False" in text
    assert "partial restore: ['model'] onto devices [0, 1, 2, 3]" in text
    assert floats_after("max |partial restore - saved| model:", text) == [0.0]
    saved = site.output_with(PAGE, "saved: ['model', 'optimizer'] |").strip()
    model, optimizer = "['dense1', 'dense2', 'norm']", "['opt_state', 'step']"
    assert saved == f"saved: ['model', 'optimizer'] | model: {model} | optimizer: {optimizer}"


def test_page_errors_are_the_real_ones(site):
    cells = site.soup(PAGE).select("div.cell.tag_raises-exception")
    errors = [cell.select_one("div.cell_output").get_text() for cell in cells]
    assert len(errors) == 2
    assert "ValueError" in errors[0] and "not implemented for `jax.sharding.AbstractMesh`" in errors[0]
    assert "ValueError" in errors[1] and "tree structures do not match" in errors[1]
    assert "optimizer:\n    - Source: MISSING" in errors[1] and "pass `partial_restore=True`" in errors[1]


def test_page_removes_its_folders_and_prints_no_path(site):
    assert "checkpoint folder still exists: False" in site.output_with(PAGE, "checkpoint folder still exists")
    assert_no_machine_paths(site, PAGE)


def test_page_exercise_restores_onto_one_device(site):
    text = site.output_with(PAGE, "resumed on 1 - uninterrupted on 8")
    assert "restored onto devices: [0]" in text
    (difference,) = floats_after("max |saved on 8, resumed on 1 - uninterrupted on 8|:", text)
    assert difference < 1e-5


def test_the_page_writes_the_rank_program_of_the_repository():
    assert written_program(PAGE) == (ROOT / "code" / "sharded_torch_ranks.py").read_text(encoding="utf8")
    text = (ROOT / "docs" / f"{PAGE}.md").read_text(encoding="utf8")
    assert ":pyobject: save" in text and ":pyobject: load" in text
