"""State across devices: the complete program behind docs/sharded-state.md.

JAX gets 8 devices on the CPU. A 2 x 4 mesh shards a small Flax NNX model (Linear 16->32, BatchNorm,
ReLU, Linear 32->8) over its "model" axis and the batch over its "data" axis; the optimizer's state
follows the parameters; five sharded training steps give the parameters of five steps on one device.
Linen annotates the same parameters with logical axis names. PyTorch trains the same architecture with
DDP and FSDP2 on 2 ranks: the ``train`` mode of code/sharded_torch_ranks.py, started with torchrun in a
subprocess by ``run_ranks`` below. Then batch statistics across devices, and the bytes each device holds
of each part of the state. Importing this module does not start JAX (``main`` first asks for the 8
devices), so that the launcher and the model can be imported where JAX already runs.

Run it with ``python code/sharded_state.py``; tests/test_sharded_state.py checks what it prints.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import nnx
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

IN_FEATURES, HIDDEN, OUT_FEATURES, BATCH_SIZE = 16, 32, 8, 32
LEARNING_RATE, NUM_STEPS = 0.01, 5
TOLERANCE = 1e-5  # float32 sums in another order: equal to a few units in the last place
WORKER = Path(__file__).with_name("sharded_torch_ranks.py")
RANKS_TIMEOUT = 90  # seconds for a whole torchrun launch; each collective has its own 60 s inside
RANKS_SHUTDOWN = 5  # seconds torchrun gives a stopped rank before it kills it (--shutdown-timeout)
STOP_GRACE = 20  # seconds a stopped launch has to end; RANKS_TIMEOUT + STOP_GRACE < the 120 s of a cell


def use_eight_cpu_devices():
    """JAX's CPU as 8 devices: before anything starts JAX's backend (importing this module does not)."""
    jax.config.update("jax_num_cpu_devices", 8)


# -- Meshes and shardings ----------------------------------------------------------------------------


def blocks(array):
    """Which device holds which block of a 2-D array, drawn from its shards (as on the page)."""
    grid = {}
    for shard in array.addressable_shards:
        rows, cols = (range(*s.indices(n)) for s, n in zip(shard.index, array.shape, strict=True))
        block = f"rows {rows.start}-{rows.stop - 1}, cols {cols.start}-{cols.stop - 1}"
        grid.setdefault((rows.start, cols.start), [block, []])[1].append(str(shard.device.id))
    lines = []
    for row in sorted({r for r, _ in grid}):
        cells = [grid[key] for key in sorted(grid) if key[0] == row]
        lines.append(" | ".join(f"dev {','.join(ids)}: {block}" for block, ids in cells))
    return "\n".join(lines)


def make_data(step):
    """The global batch of a step: the same numbers as the PyTorch ranks use."""
    rng = np.random.default_rng([1, step])
    x = rng.standard_normal((BATCH_SIZE, IN_FEATURES), dtype=np.float32)
    return x, np.tanh(x[:, :OUT_FEATURES] * x[:, OUT_FEATURES:])


# -- The NNX model, its parameters annotated with mesh axis names ------------------------------------

KERNEL_INIT = nnx.initializers.lecun_normal()
# One Optax transformation for every optimizer: the optimizer keeps it as static data of its graph, and
# nnx.jit compiles the training step again for an optimizer that holds another.
ADAM = optax.adam(LEARNING_RATE)


def sharded(init, *names):
    return nnx.with_partitioning(init, names)


class MLP(nnx.Module):
    """Linear -> BatchNorm -> ReLU -> Linear; hidden features split over the mesh axis `axis`."""

    def __init__(self, rngs: nnx.Rngs, axis: str | None = "model"):
        zeros, ones = nnx.initializers.zeros_init(), nnx.initializers.ones_init()
        # No bias before BatchNorm: the normalisation would cancel it.
        self.dense1 = nnx.Linear(
            IN_FEATURES, HIDDEN, use_bias=False, kernel_init=sharded(KERNEL_INIT, None, axis), rngs=rngs
        )
        self.norm = nnx.BatchNorm(
            HIDDEN, momentum=0.9, scale_init=sharded(ones, axis), bias_init=sharded(zeros, axis), rngs=rngs
        )
        self.dense2 = nnx.Linear(
            HIDDEN, OUT_FEATURES, kernel_init=sharded(KERNEL_INIT, axis, None), rngs=rngs
        )

    def __call__(self, x):
        h = nnx.relu(self.norm(self.dense1(x)))
        # Explicit mesh: both sides of this product are split over "model", so say how the result is split.
        return self.dense2(h, out_sharding=P("data", None))


def mse(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


@nnx.jit
def train_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(mse)(model, x, y)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def gradients(model, x, y):
    return nnx.grad(mse)(model, x, y)


def create(mesh, axis="model", seed=0):
    """The model and its Adam optimizer, created sharded on `mesh` (eager sharding needs the mesh)."""
    with jax.set_mesh(mesh):
        model = MLP(nnx.Rngs(seed), axis)
        optimizer = nnx.Optimizer(model, ADAM, wrt=nnx.Param)
    return model, optimizer


def train(mesh, model, optimizer, steps):
    losses = []
    with jax.set_mesh(mesh):
        for step in steps:
            x, y = (jax.device_put(a, P("data", None)) for a in make_data(step))
            losses.append(float(train_step(model, optimizer, x, y)))
    return losses


def spec(array):
    return str(array.sharding.spec) if isinstance(array.sharding, NamedSharding) else "one device"


def state_rows(tree):
    """(path, variable type, shape, spec) for each leaf of an NNX state."""
    for path, variable in nnx.to_flat_state(tree):
        array = variable.get_value()
        yield "/".join(map(str, path)), type(variable).__name__, tuple(array.shape), spec(array)


def max_difference(a, b):
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64)).max()) for u, v in pairs)


def bytes_on(device, tree):
    """Bytes of the arrays of `tree` that live on `device`: the shards it holds, not the global size."""
    shards = [shard for leaf in jax.tree.leaves(tree) for shard in leaf.addressable_shards]
    return sum(shard.data.nbytes for shard in shards if shard.device == device)


# -- Linen: the same parameters, annotated with logical axis names -----------------------------------

LOGICAL_RULES = (("features", None), ("hidden", "model"))


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = True):
        logical = nn.with_logical_partitioning
        x = nn.Dense(
            HIDDEN,
            use_bias=False,
            kernel_init=logical(nn.initializers.lecun_normal(), ("features", "hidden")),
        )(x)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.9,
            scale_init=logical(nn.initializers.ones_init(), ("hidden",)),
            bias_init=logical(nn.initializers.zeros_init(), ("hidden",)),
        )(x)  # fmt: skip
        x = nn.relu(x)
        return nn.Dense(
            OUT_FEATURES, kernel_init=logical(nn.initializers.lecun_normal(), ("hidden", "features"))
        )(x)


def linen_variables(mesh):
    x = jnp.zeros((BATCH_SIZE, IN_FEATURES))
    init = lambda: LinenMLP().init(jax.random.key(0), x)  # noqa: E731
    specs = nn.get_partition_spec(jax.eval_shape(init))
    shardings = nn.logical_to_mesh_sharding(specs, mesh, LOGICAL_RULES)
    return specs, jax.jit(init, out_shardings=shardings)()


# -- Batch statistics under shard_map ----------------------------------------------------------------


def batchnorm_per_device(mesh, x, axis_name):
    """One BatchNorm step under shard_map: each device sees its rows. Returns outputs and running means."""
    graphdef, state = nnx.split(
        nnx.BatchNorm(x.shape[1], momentum=0.9, axis_name=axis_name, rngs=nnx.Rngs(0))
    )

    def on_one_device(state, rows):
        norm = nnx.merge(graphdef, state)
        return norm(rows), norm.mean[...][None]  # this device's running mean, one row per device

    step = jax.shard_map(
        on_one_device, mesh=mesh, in_specs=(P(), P("data")), out_specs=(P("data"), P("data"))
    )
    return jax.jit(step)(state, jax.device_put(x, NamedSharding(mesh, P("data"))))


# -- PyTorch ranks: torchrun in a subprocess ---------------------------------------------------------


def run_ranks(nproc, *args, worker=WORKER, timeout=RANKS_TIMEOUT):
    """Run `worker` on `nproc` ranks with torchrun; return {rank: [the lines it printed]}.

    A fresh interpreter, never a fork of this one (a fork would copy JAX's running threads mid-flight),
    with no JAX or XLA settings in its environment. torchrun writes each rank's output to a file of its
    own in a temporary folder, removed afterwards. A launch that outlives `timeout` is stopped and raises
    TimeoutError: torchrun, sent SIGTERM, sends it on to the ranks and kills those still running
    RANKS_SHUTDOWN seconds later. A rank that fails makes it raise RuntimeError with the ranks' errors.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JAX_", "XLA_"))}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "error::DeprecationWarning,error::FutureWarning"}
    with tempfile.TemporaryDirectory() as logs:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            f"--log-dir={logs}", "--redirects=3", f"--shutdown-timeout={RANKS_SHUTDOWN}", str(worker), *args,
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        try:
            launcher_output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()  # torchrun stops its ranks: SIGTERM, then SIGKILL RANKS_SHUTDOWN s later
            try:
                process.communicate(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:  # torchrun itself hangs: the last resort
                process.kill()
                process.communicate()
            raise TimeoutError(
                f"{nproc} ranks still running after {timeout} s: one hangs; all stopped"
            ) from None
        outputs = {int(folder.name): folder for folder in Path(logs).glob("*/attempt_0/*")}
        read = lambda rank, stream: (outputs[rank] / f"{stream}.log").read_text()  # noqa: E731
        if process.returncode != 0:
            errors = "".join(f"--- rank {rank}:\n{read(rank, 'stderr')[-2000:]}" for rank in sorted(outputs))
            raise RuntimeError(
                f"torchrun exited with {process.returncode}\n{launcher_output[-2000:]}{errors}"
            )
        return {rank: read(rank, "stdout").splitlines() for rank in sorted(outputs)}


def show(ranks, section):
    """Each rank's lines of one section, rank by rank."""
    for rank, lines in ranks.items():
        for line in lines:
            if line.startswith(section + ": "):
                print(f"rank {rank} | {line.removeprefix(section + ': ')}")


# -- The program -------------------------------------------------------------------------------------


def main():
    use_eight_cpu_devices()
    print("== Devices and mesh")
    print("devices:", jax.device_count(), jax.devices()[0].platform)
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    print("mesh:", dict(mesh.shape), "axis types:", [t.name for t in mesh.axis_types])

    print("== Blocks")
    a = jax.device_put(jnp.arange(64.0).reshape(8, 8), NamedSharding(mesh, P("data", "model")))
    print(blocks(a))
    print("type:", jax.typeof(a))
    for spec_ in [P("data", None), P()]:
        b = jax.device_put(a, NamedSharding(mesh, spec_))
        print(
            f"{spec_}: each device holds {b.addressable_shards[0].data.shape}, copies of each block: "
            f"{len(b.addressable_shards) * b.addressable_shards[0].data.size // b.size}"
        )
    try:
        jax.device_put(jnp.zeros((6, 8)), NamedSharding(mesh, P("model", None)))
    except ValueError as error:
        print("6 rows over 4 devices raises:", type(error).__name__)

    print("== Explicit axes")
    w = jax.device_put(jnp.ones((8, 4)), NamedSharding(mesh, P("model", None)))
    try:
        a @ w
    except Exception as error:  # noqa: BLE001
        print("explicit mesh, a @ w raises:", type(error).__name__)
    with jax.set_mesh(mesh):
        print("with out_sharding:", jax.typeof(jnp.matmul(a, w, out_sharding=P("data", None))))
    auto = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    a_auto = jax.device_put(a, NamedSharding(auto, P("data", "model")))
    w_auto = jax.device_put(w, NamedSharding(auto, P("model", None)))
    product = a_auto @ w_auto
    print("auto mesh, a @ w:", jax.typeof(product), "sharding chosen by the compiler:", product.sharding.spec)

    print("== NNX parameters")
    try:
        MLP(nnx.Rngs(0))
    except ValueError as error:
        print("creating without a mesh raises:", type(error).__name__)
    model, optimizer = create(mesh)
    for row in state_rows(nnx.state(model)):
        print(*row)

    print("== Linen parameters")
    specs, variables = linen_variables(mesh)
    boxed_leaves = jax.tree.leaves_with_path(
        variables["params"], is_leaf=lambda v: isinstance(v, nn.Partitioned)
    )
    for path, leaf in boxed_leaves:
        name = jax.tree_util.keystr(path, simple=True, separator="/")
        boxed = isinstance(leaf, nn.Partitioned)
        print(name, leaf.names if boxed else "(no annotation)", spec(leaf.value if boxed else leaf))

    print("== Optimizer state")
    rows = list(state_rows(nnx.state(optimizer)))
    for row in rows:
        print(*row)
    params = {path: s for path, _, _, s in state_rows(nnx.state(model, nnx.Param))}
    moments = [(path.split("/", 3)[3], s) for path, _, _, s in rows if "/mu/" in path or "/nu/" in path]
    print("every moment has its parameter's sharding:", all(params[p] == s for p, s in moments), len(moments))

    print("== Training")
    one_device = jax.make_mesh((1, 1), ("data", "model"), devices=jax.devices()[:1])
    single_model, single_optimizer = create(one_device)
    print("same initial parameters:", max_difference(nnx.state(model), nnx.state(single_model)) == 0.0)
    stats_before = spec(model.norm.mean.get_value())
    sharded_losses = train(mesh, model, optimizer, range(NUM_STEPS))
    single_losses = train(one_device, single_model, single_optimizer, range(NUM_STEPS))
    for step, (s, o) in enumerate(zip(sharded_losses, single_losses, strict=True)):
        print(f"step {step}: loss on 8 devices {s:.6f}, on one device {o:.6f}")
    difference = max_difference(nnx.state(model), nnx.state(single_model))
    print(f"max |8 devices - 1 device| parameters and batch stats after {NUM_STEPS} steps: {difference:.1e}")
    print(f"within {TOLERANCE:.0e}: {difference < TOLERANCE}")
    print("kernel sharding after training:", spec(model.dense1.kernel.get_value()))
    whole = jax.device_get(nnx.state(model, nnx.Param))["dense1"]["kernel"].get_value()
    print("device_get gives:", type(whole).__name__, whole.shape)
    print("batch stats sharding before:", stats_before, "after:", spec(model.norm.mean.get_value()))

    print("== Batch statistics")
    rng = np.random.default_rng(0)
    offsets = np.repeat(np.arange(8, dtype=np.float32), BATCH_SIZE // 8)[:, None]  # each device's rows differ
    x = rng.standard_normal((BATCH_SIZE, 4), dtype=np.float32) + offsets
    reference = nnx.BatchNorm(4, momentum=0.9, rngs=nnx.Rngs(0))
    y_one = reference(jnp.asarray(x))
    data_mesh = jax.make_mesh((8,), ("data",))
    for label, axis_name in [("per device", None), ("axis_name='data'", "data")]:
        y, means = batchnorm_per_device(data_mesh, x, axis_name)
        print(f"{label}: running mean of feature 0 on each device {np.round(np.asarray(means[:, 0]), 3)}")
        print(
            f"{label}: max |output - one device| {float(jnp.abs(y - y_one).max()):.1e}, "
            f"max |running mean - one device| {float(jnp.abs(means - reference.mean[...]).max()):.1e}"
        )
    with jax.set_mesh(data_mesh):
        norm = nnx.BatchNorm(4, momentum=0.9, rngs=nnx.Rngs(0))
        y = nnx.jit(lambda norm, x: norm(x))(norm, jax.device_put(x, P("data")))
    print(
        f"sharded jit: max |output - one device| {float(jnp.abs(y - y_one).max()):.1e}, "
        f"max |running mean - one device| {float(jnp.abs(norm.mean[...] - reference.mean[...]).max()):.1e}"
    )
    print("one device: running mean of feature 0", round(float(reference.mean[0]), 3))

    print("== PyTorch ranks")
    ranks = run_ranks(2, "train")
    for section in ["ddp", "batchnorm", "syncbn", "fsdp", "fsdp_proof", "optimizer", "state_dict", "bytes"]:
        show(ranks, section)

    print("== Bytes per device")
    device = jax.devices()[0]
    data_only = jax.make_mesh((8,), ("data",))
    for label, mesh_, axis in [("NNX replicated", data_only, None), ("NNX sharded", mesh, "model")]:
        model, optimizer = create(mesh_, axis)
        train(mesh_, model, optimizer, [0])
        with jax.set_mesh(mesh_):
            x, y = (jax.device_put(a, P("data", None)) for a in make_data(0))
            grads = gradients(model, x, y)
        held = {
            "parameters": bytes_on(device, nnx.state(model, nnx.Param)),
            "gradients": bytes_on(device, grads),
            "optimizer": bytes_on(device, nnx.state(optimizer)),
            "batch_stats": bytes_on(device, nnx.state(model, nnx.BatchStat)),
        }
        print(label, " ".join(f"{key}={value}" for key, value in held.items()))


if __name__ == "__main__":
    main()
