"""The claims of docs/sharded-state.md, checked in its script, its PyTorch ranks and the rendered page."""

import re
import shutil
import subprocess
import time

import pytest
from conftest import (
    CONF,
    ROOT,
    assert_no_machine_paths,
    floats_after,
    import_script,
    rank_output,
    run_script,
    section,
    written_program,
)

PAGE = "sharded-state"


def out():
    return run_script("sharded_state")


def byte_counts(text, label, rank=0):
    """{'parameters': ..., ...} from rank 0's line 'LABEL parameters=... gradients=...' (or the JAX line)."""
    pattern = rf"^(rank {rank} \| )?{re.escape(label)} parameters="
    (line,) = [line for line in text.splitlines() if re.search(pattern, line)]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


# -- JAX: mesh, shardings, explicit axes --------------------------------------------------------------


def test_eight_cpu_devices_in_an_explicit_2_by_4_mesh():
    text = section(out(), "Devices and mesh")
    assert "devices: 8 cpu" in text
    assert "mesh: {'data': 2, 'model': 4} axis types: ['Explicit', 'Explicit']" in text


def test_each_device_holds_one_block_and_none_copies_it():
    text = section(out(), "Blocks")
    rows = [
        " | ".join(
            f"dev {4 * half + i}: rows {4 * half}-{4 * half + 3}, cols {2 * i}-{2 * i + 1}" for i in range(4)
        )
        for half in (0, 1)
    ]
    assert text.splitlines()[1:3] == rows
    assert "type: float32[8@data,8@model]" in text
    assert "P('data', None): each device holds (4, 8), copies of each block: 4" in text
    assert "P(): each device holds (8, 8), copies of each block: 8" in text
    assert "6 rows over 4 devices raises: ValueError" in text


def test_explicit_axes_refuse_an_ambiguous_product_until_out_sharding_says():
    text = section(out(), "Explicit axes")
    assert "explicit mesh, a @ w raises: ShardingTypeError" in text
    assert "with out_sharding: float32[8@data,4]" in text
    assert "auto mesh, a @ w: float32[8,4] sharding chosen by the compiler: P('data',)" in text


# -- Flax: sharded parameters and optimizer state -----------------------------------------------------


def test_nnx_parameters_are_created_sharded_and_need_the_mesh():
    text = section(out(), "NNX parameters")
    assert "creating without a mesh raises: ValueError" in text
    for row in [
        "dense1/kernel Param (16, 32) P(None, 'model')",
        "dense2/kernel Param (32, 8) P('model', None)",
        "dense2/bias Param (8,) P(None,)",
        "norm/scale Param (32,) P('model',)",
        "norm/mean BatchStat (32,) P(None,)",
    ]:
        assert row in text


def test_linen_logical_names_map_to_the_same_shardings():
    text = section(out(), "Linen parameters")
    assert "Dense_0/kernel ('features', 'hidden') P(None, 'model')" in text
    assert "Dense_1/kernel ('hidden', 'features') P('model', None)" in text
    assert "BatchNorm_0/scale ('hidden',) P('model',)" in text
    assert "Dense_1/bias (no annotation) P()" in text


def test_every_adam_moment_has_its_parameters_sharding():
    text = section(out(), "Optimizer state")
    assert "every moment has its parameter's sharding: True 10" in text
    assert "opt_state/0/mu/dense1/kernel OptVariable (16, 32) P(None, 'model')" in text
    assert "opt_state/0/nu/dense2/kernel OptVariable (32, 8) P('model', None)" in text


# -- Training: sharded equals one device ---------------------------------------------------------------


def test_sharded_nnx_training_equals_one_device_within_tolerance():
    text = section(out(), "Training")
    assert "same initial parameters: True" in text
    eight, one = floats_after("on 8 devices", text), floats_after("on one device", text)
    assert len(eight) == len(one) == 5 and eight == one
    (difference,) = floats_after("after 5 steps:", text)
    assert difference < 1e-6
    assert "within 1e-05: True" in text


def test_the_step_moves_batch_stats_to_the_hidden_features_sharding():
    text = section(out(), "Training")
    assert "kernel sharding after training: P(None, 'model')" in text
    assert "batch stats sharding before: P(None,) after: P('model',)" in text
    assert "device_get gives: ndarray (16, 32)" in text


def test_ddp_ranks_see_other_rows_and_keep_identical_parameters_equal_to_one_process():
    text = section(out(), "PyTorch ranks")
    losses = []
    for rank in (0, 1):
        lines = [line for line in rank_output(text, rank).splitlines() if line.startswith("step ")]
        assert len(lines) == 5 and all(
            line.endswith("parameters identical on all ranks: True") for line in lines
        )
        losses.append(floats_after("rows", "\n".join(lines)))
        (difference,) = floats_after("max |DDP - one process| after 5 steps:", rank_output(text, rank))
        assert difference < 1e-6
    assert losses[0] != losses[1], "each rank's loss is on its own rows"


def test_fsdp2_shards_dim_0_and_trains_like_one_process():
    text = section(out(), "PyTorch ranks")
    for rank in (0, 1):
        lines = rank_output(text, rank)
        assert "0.weight DTensor (Shard(dim=0),) local (16, 16) of global (32, 16)" in lines
        assert "2.weight DTensor (Shard(dim=0),) local (4, 32) of global (8, 32)" in lines
        (difference,) = floats_after("max |FSDP2 - one process| after 5 steps:", lines)
        assert difference < 1e-6
        assert "FSDP2 0.weight exp_avg    DTensor (Shard(dim=0),) local (16, 16) of (32, 16)" in lines
        assert "DDP   0.weight exp_avg    Tensor  (32, 16)" in lines


def test_full_state_dict_lives_on_rank_0_only_and_the_sharded_one_everywhere():
    text = section(out(), "PyTorch ranks")
    zero, one = (rank_output(text, rank) for rank in (0, 1))
    sharded = "sharded: 3 tensors, local DTensor(16, 16), DTensor(4, 32), DTensor(4,)"
    assert sharded in zero and sharded in one
    assert "full:    3 tensors Tensor(32, 16), Tensor(8, 32), Tensor(8,)" in zero
    assert "full:    0 tensors" in one


# -- Batch statistics ----------------------------------------------------------------------------------


def test_per_device_batch_statistics_differ_and_synced_ones_match_one_device():
    text = section(out(), "Batch statistics")
    (per_device,) = re.findall(r"per device: running mean of feature 0 on each device \[([^\]]*)\]", text)
    assert len(set(per_device.split())) == 8, "each device has statistics of its own"
    (synced,) = re.findall(r"axis_name='data': running mean of feature 0 on each device \[([^\]]*)\]", text)
    (one,) = floats_after("one device: running mean of feature 0", text)
    assert [float(v) for v in synced.split()] == [one] * 8
    differences = {
        label: [float(v) for v in values]
        for label, *values in re.findall(
            r"^(.+): max \|output - one device\| (\S+), max \|running mean - one device\| (\S+)$", text, re.M
        )
    }
    assert differences["per device"][0] > 1.0 and differences["per device"][1] > 0.1
    assert max(differences["axis_name='data'"]) < 1e-6 and max(differences["sharded jit"]) < 1e-6


def test_sync_batchnorm_refuses_cpu_tensors_in_a_process_group_of_two_ranks():
    text = section(out(), "PyTorch ranks")
    refused = (
        "SyncBatchNorm, training, CPU tensor, 2 ranks: "
        "ValueError: SyncBatchNorm expected input tensor to be on GPU or XPU or privateuseone"
    )
    for rank in (0, 1):
        assert refused in rank_output(text, rank)


def test_ddp_batchnorm_normalises_with_each_ranks_rows_and_ends_away_from_one_process():
    text = section(out(), "PyTorch ranks")
    means = {}
    for rank in (0, 1):
        lines = rank_output(text, rank)
        (mine,) = re.findall(r"mean over my 16 rows:\s+\[([^\]]*)\]", lines)
        (everyone,) = re.findall(r"all_reduce\): \[([^\]]*)\]", lines)
        (whole,) = re.findall(r"whole batch:\s+\[([^\]]*)\]", lines)
        assert everyone == whole, "the all_reduce of every rank's rows is the one-process statistic"
        assert mine != whole
        means[rank] = mine
        (difference,) = floats_after("max |DDP with BatchNorm - one process| after 5 steps:", lines)
        assert f"{difference:.2f}" == "0.07", "the page says 0.07"
    assert means[0] != means[1]


# -- Bytes per device -----------------------------------------------------------------------------------


def test_bytes_per_device_replicated_and_sharded():
    text = out()
    ddp, fsdp = byte_counts(text, "DDP"), byte_counts(text, "FSDP2")
    assert (ddp, fsdp) == (byte_counts(text, "DDP", rank=1), byte_counts(text, "FSDP2", rank=1))
    replicated, sharded = byte_counts(text, "NNX replicated"), byte_counts(text, "NNX sharded")
    assert ddp["parameters"] == replicated["parameters"] == 840 * 4
    assert ddp["gradients"] == ddp["parameters"] and replicated["gradients"] == replicated["parameters"]
    assert fsdp["parameters"] == fsdp["gradients"] == ddp["parameters"] // 2
    assert ddp["optimizer"] == 2 * ddp["parameters"] + 5 * 4, "two moments and a float32 step per parameter"
    assert fsdp["optimizer"] == 2 * fsdp["parameters"] + 5 * 4
    assert replicated["optimizer"] == 2 * replicated["parameters"] + 4 + 4, "Optax count, NNX step"
    bias = 8 * 4  # the second layer's bias: not split
    assert sharded["parameters"] == sharded["gradients"] == bias + (replicated["parameters"] - bias) // 4
    assert sharded["optimizer"] == 2 * sharded["parameters"] + 8
    assert ddp["batch_stats"] == fsdp["batch_stats"] == 2 * 32 * 4 + 8, "buffers stay whole under FSDP2"
    assert replicated["batch_stats"] == 2 * 32 * 4 and sharded["batch_stats"] == 2 * 32 * 4 // 4


# -- The launcher: timeouts and failures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def launcher():
    return import_script("sharded_state")  # importing it starts no JAX: safe in a test process


def test_a_hung_rank_that_ignores_sigterm_is_stopped_with_a_clear_error(launcher, tmp_path):
    """Rank 1 starts, says so, ignores torchrun's SIGTERM and sleeps: torchrun must kill it."""
    started = tmp_path / "rank-1-started"
    worker = tmp_path / "hang.py"
    worker.write_text(
        "import os, pathlib, signal, time\n"
        "if os.environ['RANK'] == '1':\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"    pathlib.Path({str(started)!r}).write_text(str(os.getpid()))\n"
        "    time.sleep(600)\n"
    )
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="2 ranks still running after 12 s: one hangs; all stopped"):
        launcher.run_ranks(2, worker=worker, timeout=12)
    assert time.monotonic() - start < 12 + launcher.STOP_GRACE
    assert started.is_file(), "rank 1 started before the launch timed out"
    if shutil.which("pgrep"):
        time.sleep(1)
        survivors = subprocess.run(["pgrep", "-f", str(worker)], capture_output=True, text=True).stdout
        assert survivors == "", "every rank was stopped"


def test_a_failing_rank_raises_with_its_error(launcher, tmp_path):
    worker = tmp_path / "fail.py"
    worker.write_text("import os\nif os.environ['RANK'] == '1':\n    raise SystemExit('rank 1 gives up')\n")
    with pytest.raises(RuntimeError, match="rank 1 gives up"):
        launcher.run_ranks(2, worker=worker, timeout=60)


def test_collectives_time_out_before_the_launch_does_and_a_stopped_launch_ends_within_the_cell_limit(
    launcher,
):
    ranks = import_script("sharded_torch_ranks")
    assert ranks.COLLECTIVE_TIMEOUT.total_seconds() < launcher.RANKS_TIMEOUT
    assert launcher.RANKS_SHUTDOWN < launcher.STOP_GRACE
    assert launcher.RANKS_TIMEOUT + launcher.STOP_GRACE < CONF["nb_execution_timeout"]
    for page in (PAGE, "sharded-checkpoints"):  # the pages' own launchers use the same numbers
        text = (ROOT / "docs" / f"{page}.md").read_text(encoding="utf8")
        assert "def run_ranks(nproc, *args, timeout=90):" in text and '"--shutdown-timeout=5"' in text
        assert "process.communicate(timeout=20)" in text
    assert (launcher.RANKS_TIMEOUT, launcher.RANKS_SHUTDOWN, launcher.STOP_GRACE) == (90, 5, 20)
    assert ranks.COLLECTIVE_TIMEOUT.total_seconds() == 60, "the page says 60 s"


def test_the_launcher_forks_nothing_from_a_process_that_runs_jax():
    source = (ROOT / "code" / "sharded_state.py").read_text()
    assert "subprocess.Popen" in source and "multiprocessing" not in source and "os.fork" not in source


# -- The rendered page ----------------------------------------------------------------------------------


def test_page_tab_sets_compare_the_frameworks(site):
    tab_sets = site.soup(PAGE).select("div.sd-tab-set.framework-tabs")
    labels = [[label.get_text(strip=True) for label in t.select("label.sd-tab-label")] for t in tab_sets]
    assert labels == [
        ["PyTorch", "Flax Linen", "Flax NNX"],  # sharded parameters
        ["PyTorch", "Flax NNX"],  # optimizer state
        ["PyTorch", "Flax NNX"],  # DDP and the step
        ["PyTorch", "Flax NNX"],  # FSDP2 and the proof
        ["PyTorch", "Flax NNX"],  # state dicts
        ["PyTorch", "Flax NNX"],  # batch statistics
    ]


def test_page_shows_the_blocks_and_the_types(site):
    text = site.output_with(PAGE, "global shape: (8, 8)")
    assert "dev 0: rows 0-3, cols 0-1 | dev 1: rows 0-3, cols 2-3" in text
    assert "one shard: (4, 2)" in text
    assert "dev 0,1,2,3,4,5,6,7: rows 0-7, cols 0-7" in site.output_with(PAGE, "P()              each device")
    assert site.output_with(PAGE, "float32[8@data,8@model]").strip() == "float32[8@data,8@model]"
    assert site.output_with(PAGE, "float32[8@data,4]").strip() == "float32[8@data,4]"
    auto = site.output_with(PAGE, "sharding chosen by the compiler")
    assert "type: float32[8,4]" in auto and "P('data',)" in auto


def test_page_errors_are_the_real_ones(site):
    cells = site.soup(PAGE).select("div.cell.tag_raises-exception")
    errors = [cell.select_one("div.cell_output").get_text() for cell in cells]
    assert len(errors) == 3
    assert "does not evenly divide the dimension size 6" in errors[0]
    assert "ShardingTypeError" in errors[1] and "out_sharding" in errors[1]
    assert "ValueError" in errors[2] and "mesh context" in errors[2]
    refused = site.output_with(PAGE, "SyncBatchNorm, training, CPU tensor")
    assert refused.count("2 ranks: ValueError: SyncBatchNorm expected input tensor to be on GPU") == 2


def test_page_state_tables_show_each_leaf_with_its_sharding(site):
    params = site.output_with(PAGE, "norm/mean                    BatchStat")
    assert re.search(r"dense1/kernel\s+Param\s+float32\[16,32@model\]\s+P\(None, 'model'\)", params)
    optimizer = site.output_with(PAGE, "moments have their parameter's sharding")
    assert "all 10 moments have their parameter's sharding: True" in optimizer
    linen = site.output_with(PAGE, "nn.Dense takes out_sharding")
    assert "nn.Dense takes out_sharding: False" in linen
    assert re.search(r"Dense_0/kernel\s+\('features', 'hidden'\)\s+P\(None, 'model'\)", linen)


def test_page_proofs_match_the_script(site):
    proof = site.output_with(PAGE, "max |8 devices - 1 device|")
    (difference,) = floats_after("max |8 devices - 1 device| after 5 steps:", proof)
    assert difference < 1e-6 and "(within 1e-05: True)" in proof
    assert floats_after("on 8 devices", proof) == floats_after("on 8 devices", section(out(), "Training"))
    ddp = site.output_with(PAGE, "max |DDP - one process|")
    assert ddp.count("parameters identical on all ranks: True") == 10
    fsdp = site.output_with(PAGE, "max |FSDP2 - one process|")
    assert all(value < 1e-6 for value in floats_after("max |FSDP2 - one process| after 5 steps:", fsdp))


def test_page_batch_statistics(site):
    text = site.output_with(PAGE, "axis_name='data': max |output - one device|")
    assert floats_after("axis_name='data': max |output - one device|", text) == [0.0]
    assert floats_after("per device: max |output - one device|", text)[0] > 1.0
    jit = site.output_with(PAGE, "sharded jit: max |output - one device|")
    assert floats_after("sharded jit: max |output - one device|", jit) == [0.0]
    torch_side = site.output_with(PAGE, "max |DDP with BatchNorm - one process|")
    assert all(
        v > 1e-2 for v in floats_after("max |DDP with BatchNorm - one process| after 5 steps:", torch_side)
    )


def test_page_bytes_table_is_the_measured_one(site):
    (table,) = [t for t in site.soup(PAGE).select("table") if "bytes on rank 0 / device 0" in t.get_text()]
    rows = {
        tr.select("td")[0].get_text(): [td.get_text() for td in tr.select("td")[1:]]
        for tr in table.select("tbody tr")
    }
    text = out()
    for label, key in [
        ("parameters", "parameters"),
        ("gradients", "gradients"),
        ("optimizer state", "optimizer"),
        ("batch statistics", "batch_stats"),
    ]:
        expected = [
            f"{byte_counts(text, name)[key]:,}" for name in ["DDP", "NNX replicated", "FSDP2", "NNX sharded"]
        ]
        assert rows[label] == expected


def test_page_exercise_predicts_and_measures(site):
    text = site.output_with(PAGE, "parameter bytes on device 0: predicted")
    assert "predicted 1696 measured 1696" in text
    (difference,) = floats_after("max |4 x 2 mesh - 1 device| after 5 steps:", text)
    assert difference < 1e-5


def test_page_prints_no_path_of_the_build_machine(site):
    assert_no_machine_paths(site, PAGE)


def test_the_page_writes_the_rank_program_of_the_repository(site):
    assert written_program(PAGE) == (ROOT / "code" / "sharded_torch_ranks.py").read_text(encoding="utf8")
    assert "rank program's folder still exists: False" in site.output_with(PAGE, "rank program's folder")


def test_page_devices_mesh_and_layouts(site):
    assert site.output_with(PAGE, "8 devices:").strip() == "8 devices: " + ", ".join(
        f"cpu {i}" for i in range(8)
    )
    mesh = site.output_with(PAGE, "device ids:")
    assert "axes: {'data': 2, 'model': 4}" in mesh and "axis types: ['Explicit', 'Explicit']" in mesh
    assert re.search(r"\[\[0 1 2 3\]\s+\[4 5 6 7\]\]", mesh)
    copies = site.output_with(PAGE, "P('data', None)  each device holds (4, 8)")
    assert "dev 0,1,2,3: rows 0-3, cols 0-7\ndev 4,5,6,7: rows 4-7, cols 0-7" in copies
    assert "P()              each device holds (8, 8)" in copies
    six = site.output_with(PAGE, "rows 0-2, cols 0-7")
    assert six.strip() == "dev 0,1,2,3: rows 0-2, cols 0-7\ndev 4,5,6,7: rows 3-5, cols 0-7"


def page_rank_output(site, marker):
    lines = site.output_with(PAGE, marker).strip().splitlines()
    assert lines and all(re.match(r"rank [01] \| ", line) for line in lines)
    return lines


def test_page_rank_outputs_are_the_scripts(site):
    """Each line the page shows of the ranks is a line the script printed (and the tests above check)."""
    script = section(out(), "PyTorch ranks").splitlines()
    for marker, count in [
        ("local (16, 16) of global (32, 16)", 6),  # fsdp
        ("exp_avg_sq", 12),  # optimizer
        ("parameters identical on all ranks", 12),  # ddp
        ("max |FSDP2 - one process|", 2),  # fsdp_proof
        ("sharded: 3 tensors", 4),  # state_dict
        ("mean over my 16 rows", 8),  # batchnorm
        ("SyncBatchNorm, training", 2),  # syncbn
    ]:
        lines = page_rank_output(site, marker)
        assert len(lines) == count, marker
        assert all(line.rstrip() in [s.rstrip() for s in script] for line in lines), marker
    counts = site.output_with(PAGE, "rank 0 printed").strip().splitlines()
    rank_0 = [line for line in script if line.startswith("rank 0 | ")]
    assert counts == [f"rank {rank} printed {len(rank_0)} lines" for rank in (0, 1)]


def test_page_nnx_state_after_training_and_as_data(site):
    after = site.output_with(PAGE, "norm mean before training")
    assert (
        after.strip()
        == "dense1 kernel: P(None, 'model')\nnorm mean before training: P(None,)  after: P('model',)"
    )
    data = site.output_with(PAGE, "numpy array:")
    assert "sharded: jax.Array: True (16, 32) P(None, 'model')  one shard: (16, 8)" in data
    assert "full:    numpy array: True (16, 32)" in data
    params = site.output_with(PAGE, "norm/mean                    BatchStat")
    assert re.search(r"norm/mean\s+BatchStat\s+float32\[32\]\s+P\(None,\)", params)
    assert re.search(r"dense2/kernel\s+Param\s+float32\[32@model,8\]\s+P\('model', None\)", params)


def test_page_batch_statistics_per_device_and_synced(site):
    text = site.output_with(PAGE, "axis_name='data': max |output - one device|")
    (one,) = floats_after("one device: running mean of feature 0:", text)
    (per_device,) = re.findall(r"per device: running mean of feature 0 on each device: \[([^\]]*)\]", text)
    assert len(set(per_device.split())) == 8
    (synced,) = re.findall(r"axis_name='data': running mean of feature 0 on each device: \[([^\]]*)\]", text)
    assert [float(v) for v in synced.split()] == [one] * 8


def test_a_new_optax_transformation_makes_a_new_optimizer_graph():
    """Why the script and the pages share one optax.adam: the optimizer keeps it as static graph data, a
    part of what nnx.jit compiles for, so an optimizer built with another one is another graph."""
    import optax  # noqa: PLC0415
    from flax import nnx  # noqa: PLC0415

    def optimizer(tx):
        return nnx.Optimizer(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), tx, wrt=nnx.Param)

    shared = optax.adam(0.01)
    assert nnx.graphdef(optimizer(shared)) == nnx.graphdef(optimizer(shared))
    assert nnx.graphdef(optimizer(optax.adam(0.01))) != nnx.graphdef(optimizer(optax.adam(0.01)))
