"""Sharded checkpoints: the complete program behind docs/sharded-checkpoints.md.

The NNX model of docs/sharded-state.md trains 3 steps on a 2 x 4 mesh of 8 CPU devices; Orbax saves its
state and its optimizer's, and restores them onto a 2 x 2 mesh of 4 devices, with target shardings built
for that mesh; 3 more steps there end where an uninterrupted 6-step run on 8 devices ends. PyTorch does
the same with FSDP2 and Distributed Checkpoint, saved on 2 ranks and loaded on 4: the ranks run the
``save`` and ``load`` modes of code/sharded_torch_ranks.py, started with torchrun by ``run_ranks`` of
code/sharded_state.py.
Then the restore targets that fail: one on an abstract mesh, one without the optimizer.

Run it with ``python code/sharded_checkpoints.py``; tests/test_sharded_checkpoints.py checks what it prints.
"""

import inspect
import tempfile
from pathlib import Path

import jax
import orbax.checkpoint as ocp
import sharded_state as common  # the model, the step and the launcher of docs/sharded-state.md
from flax import nnx
from jax.sharding import NamedSharding

SAVE_AT, TOTAL_STEPS = 3, 6


def build(seed=0):
    model = common.MLP(nnx.Rngs(seed))
    return model, nnx.Optimizer(model, common.ADAM, wrt=nnx.Param)


def create(mesh, seed=0):
    with jax.set_mesh(mesh):
        return build(seed)


def abstract(mesh):
    """Model and optimizer as nnx.eval_shape gives them: no arrays, shardings on an *abstract* mesh."""
    with jax.set_mesh(mesh):
        return nnx.eval_shape(build)


def on_mesh(abstract_state, mesh):
    """The restore target: each leaf's shape, dtype and spec, its sharding rebuilt on the concrete mesh."""

    def concrete(leaf):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=NamedSharding(mesh, leaf.sharding.spec))

    return jax.tree.map(concrete, abstract_state)


def devices_of(tree):
    return sorted({device.id for leaf in jax.tree.leaves(tree) for device in leaf.sharding.device_set})


def main():
    common.use_eight_cpu_devices()
    mesh8 = jax.make_mesh((2, 4), ("data", "model"))
    mesh4 = jax.make_mesh((2, 2), ("data", "model"), devices=jax.devices()[:4])
    folder = tempfile.TemporaryDirectory()
    root = Path(folder.name)
    checkpointer = ocp.StandardCheckpointer()

    print("== Orbax: save on 8 devices")
    straight_model, straight_optimizer = create(mesh8)
    common.train(mesh8, straight_model, straight_optimizer, range(TOTAL_STEPS))
    model, optimizer = create(mesh8)
    common.train(mesh8, model, optimizer, range(SAVE_AT))
    state = {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}
    print("saved from devices:", devices_of(state))
    print("batch stats saved as:", state["model"]["norm"]["mean"].get_value().sharding.spec)
    checkpointer.save(root / "nnx", state)
    checkpointer.wait_until_finished()
    print("files:", sorted(path.name for path in (root / "nnx").iterdir()))
    stored = checkpointer.metadata(root / "nnx").item_metadata
    print("stored dense1 kernel:", stored["model"]["dense1"]["kernel"]["value"].shape)

    print("== Orbax: restore on 4 devices")
    abstract_model, abstract_optimizer = abstract(mesh4)
    graphdef, abstract_model_state = nnx.split(abstract_model)
    optimizer_graphdef, abstract_optimizer_state = nnx.split(abstract_optimizer)
    leaf = abstract_model_state["dense1"]["kernel"].get_value()
    print("eval_shape leaf mesh:", type(leaf.sharding.mesh).__name__)
    try:
        leaf.sharding.devices_indices_map(leaf.shape)  # what a restore asks of every target sharding
    except ValueError as error:
        print("devices_indices_map on the eval_shape leaf raises:", type(error).__name__)
    target = on_mesh({"model": abstract_model_state, "optimizer": abstract_optimizer_state}, mesh4)
    leaf = target["model"]["dense1"]["kernel"].get_value()
    blocks = leaf.sharding.devices_indices_map(leaf.shape)
    print(
        "target dense1 kernel blocks:", {d.id: tuple((s.start, s.stop) for s in i) for d, i in blocks.items()}
    )
    _, by_flax = nnx.get_abstract_model(lambda: build()[0], mesh4)
    same = [
        a.sharding.is_equivalent_to(b.sharding, a.ndim)
        for a, b in zip(*map(jax.tree.leaves, (target["model"], by_flax)), strict=True)
    ]
    print("same shardings as nnx.get_abstract_model:", all(same))
    print(
        "dense2/bias, no annotation: here",
        target["model"]["dense2"]["bias"].get_value().sharding.spec,
        "nnx.get_abstract_model",
        by_flax["dense2"]["bias"].get_value().sharding.spec,
    )
    restored = checkpointer.restore(root / "nnx", target)
    print("restored onto devices:", devices_of(restored))
    for path, variable in nnx.to_flat_state(restored["model"]):
        print("/".join(map(str, path)), variable.get_value().sharding.spec)
    model4 = nnx.merge(graphdef, restored["model"])
    optimizer4 = nnx.merge(optimizer_graphdef, restored["optimizer"])
    print("optimizer step after restore:", int(optimizer4.step[...]))
    common.train(mesh4, model4, optimizer4, range(SAVE_AT, TOTAL_STEPS))
    difference = common.max_difference(nnx.state(model4), nnx.state(straight_model))
    print(f"max |saved on 8, resumed on 4 - uninterrupted on 8| model: {difference:.1e}")
    difference = common.max_difference(nnx.state(optimizer4), nnx.state(straight_optimizer))
    print(f"max |saved on 8, resumed on 4 - uninterrupted on 8| optimizer: {difference:.1e}")

    print("== Orbax: a target that does not match")
    try:
        checkpointer.restore(root / "nnx", {"model": target["model"]})
    except ValueError as error:
        print("restore into a target without the optimizer raises:", type(error).__name__)
    print(
        "saved:", sorted(stored), "model:", sorted(stored["model"]), "optimizer:", sorted(stored["optimizer"])
    )
    signature = inspect.signature(ocp.StandardCheckpointer.restore)
    print("StandardCheckpointer.restore takes partial_restore:", "partial_restore" in signature.parameters)
    model_only = {"model": target["model"]}
    restored_model = ocp.PyTreeCheckpointer().restore(
        root / "nnx",
        args=ocp.args.PyTreeRestore(
            item=model_only,
            restore_args=ocp.checkpoint_utils.construct_restore_args(model_only),
            partial_restore=True,
        ),
    )
    print("partial restore:", sorted(restored_model), "onto devices", devices_of(restored_model))
    difference = common.max_difference(restored_model["model"], state["model"])
    print(f"max |partial restore - saved| model: {difference:.1e}")

    print("== DCP: save on 2 ranks, load on 4")
    dcp_folder = str(root / "dcp")
    common.show(common.run_ranks(2, "save", dcp_folder), "save")
    print("files:", sorted(path.name for path in (root / "dcp").iterdir()))
    common.show(common.run_ranks(4, "load", dcp_folder), "load")

    print("== Cleanup")
    folder.cleanup()
    print("checkpoint folder still exists:", root.exists())


if __name__ == "__main__":
    main()
