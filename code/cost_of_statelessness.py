"""One training step of the same MLP timed six ways: PyTorch eager, PyTorch under torch.compile, Linen
with a TrainState under jax.jit, NNX under nnx.jit in graph mode and in tree mode, and NNX split once with
a pure step under jax.jit.

The steps are checked to compute the same losses from the same weights before anything is timed. The
timings themselves differ from run to run and from machine to machine: the script prints them, and
nothing it asserts depends on them.
"""

import itertools
import logging
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import linen as nn
from flax import nnx
from flax.training.train_state import TrainState

# Two warnings that torch.compile raises about PyTorch's own code, not this script's, and that only the
# tests see (they run scripts with -W error): torch 2.13.0's inductor imports torch.utils.mkldnn, which
# uses the deprecated torch.jit.script_method, on its first compile for the CPU; and its tracer reads the
# .grad of every tensor it meets and hides the warning that gives (torch._logging.hide_warnings), a
# hiding that -W error pre-empts.
warnings.filterwarnings("ignore", r"`torch\.jit\.script_method` is deprecated", DeprecationWarning)
warnings.filterwarnings("ignore", r"The \.grad attribute of a Tensor that is not a leaf Tensor", UserWarning)

SIZES = {"small": (32, 64, 64, 10), "larger": (512, 1024, 1024, 10)}
BATCH = 64
LEARNING_RATE = 0.1
STYLES = (
    "PyTorch eager",
    "PyTorch + torch.compile",
    "Linen + jax.jit",
    "NNX + nnx.jit",
    "NNX + nnx.jit (tree)",
    "NNX split + jax.jit",
)
REPEATS = {"small": 200, "larger": 20}  # timed steps per style, after the warm-up
WARMUP = 3  # untimed steps per style after the loss check


def use_one_core():
    """Run both frameworks on one core: one PyTorch thread, and one XLA thread.

    XLA sizes its CPU thread pool from the cores the process may use when JAX first runs something, so
    this must come before the first JAX computation. Elsewhere than on Linux only PyTorch is limited.
    """
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)


# -- The same weights and batch for every framework ------------------------------------------------


def make_weights(sizes, seed=0):
    """One (kernel, bias) pair per layer, kernel laid out (in, out) as in Flax, as float32 NumPy arrays."""
    rng = np.random.default_rng(seed)
    return [
        (
            rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32),
            rng.uniform(-0.1, 0.1, n_out).astype(np.float32),
        )
        for n_in, n_out in itertools.pairwise(sizes)
    ]


def make_batch(sizes, seed=1):
    """BATCH inputs and integer class labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], BATCH).astype(np.int32)
    return x, y


# -- PyTorch: the state lives in the model and the optimizer ---------------------------------------


class TorchMLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def torch_setup(sizes, weights):
    model = TorchMLP(sizes)
    with torch.no_grad():
        for layer, (kernel, bias) in zip(model.layers, weights, strict=True):
            layer.weight.copy_(torch.from_numpy(kernel.T))  # PyTorch stores (out, in)
            layer.bias.copy_(torch.from_numpy(bias))
    return model, torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)


def torch_train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


# The same step, compiled (on the CPU, inductor writes C++ and builds it with the machine's compiler).
# dynamic=False: one program per input shape, as jax.jit does, not one for all shapes.
compiled_torch_train_step = torch.compile(torch_train_step, dynamic=False)
# optimizer.step() opens a profiler context that compiled code skips; torch.compile's tracer logs that once,
# with a timestamp. That one message is dropped; any other warning would show.
tracer_log = logging.getLogger("torch._dynamo.variables.ctx_manager")
tracer_log.addFilter(lambda record: "Profiler record function" not in record.getMessage())


# -- Flax Linen: the state is a TrainState that goes in and comes out ------------------------------


class LinenMLP(nn.Module):
    sizes: tuple

    @nn.compact
    def __call__(self, x):
        for n_out in self.sizes[1:-1]:
            x = nn.relu(nn.Dense(n_out)(x))
        return nn.Dense(self.sizes[-1])(x)


def linen_setup(sizes, weights):
    params = {
        f"Dense_{i}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)} for i, (k, b) in enumerate(weights)
    }
    model = LinenMLP(sizes)
    return TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(LEARNING_RATE))


@jax.jit
def linen_train_step(state, x, y):
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


# -- Flax NNX: the state is back in the objects ----------------------------------------------------


class NNXMLP(nnx.Module):
    def __init__(self, sizes, rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))
        return self.layers[-1](x)


def nnx_setup(sizes, weights):
    model = nnx.eval_shape(lambda: NNXMLP(sizes, nnx.Rngs(0)))  # shapes only: no random numbers drawn
    for layer, (kernel, bias) in zip(model.layers, weights, strict=True):
        layer.kernel.set_value(jnp.asarray(kernel))
        layer.bias.set_value(jnp.asarray(bias))
    return model, nnx.Optimizer(model, optax.sgd(LEARNING_RATE), wrt=nnx.Param)


def nnx_loss(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def nnx_step_in_place(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(nnx_loss)(model, x, y)
    optimizer.update(model, grads)  # changes model and optimizer in place
    return loss


nnx_train_step = nnx.jit(nnx_step_in_place)  # graph mode, the default
nnx_tree_train_step = nnx.jit(nnx_step_in_place, graph=False)  # tree mode


@jax.jit
def pure_train_step(graphdef, state, x, y):
    """A pure function of arrays: merge the objects inside, split them again on the way out."""
    model, optimizer = nnx.merge(graphdef, state)
    loss, grads = nnx.value_and_grad(nnx_loss)(model, x, y)
    optimizer.update(model, grads)
    return nnx.state((model, optimizer)), loss


# -- One object per style: `step()` runs one step and waits until its results are ready -------------


class TorchStepper:
    def __init__(self, sizes, weights, batch):
        self.model, self.optimizer = torch_setup(sizes, weights)
        self.x, self.y = (torch.from_numpy(a) for a in batch)
        self.y = self.y.long()

    def step(self):  # eager on the CPU: the work is done when the call returns
        self.loss = torch_train_step(self.model, self.optimizer, self.x, self.y)


class CompiledTorchStepper(TorchStepper):
    def step(self):
        self.loss = compiled_torch_train_step(self.model, self.optimizer, self.x, self.y)


class LinenStepper:
    def __init__(self, sizes, weights, batch):
        self.state = linen_setup(sizes, weights)
        self.x, self.y = (jnp.asarray(a) for a in batch)

    def step(self):
        self.state, self.loss = linen_train_step(self.state, self.x, self.y)
        jax.block_until_ready((self.loss, self.state.params))


class NNXStepper:
    def __init__(self, sizes, weights, batch):
        self.model, self.optimizer = nnx_setup(sizes, weights)
        self.x, self.y = (jnp.asarray(a) for a in batch)
        # The Param objects, found once: reading them after a step gives the new arrays.
        self.params = [v for layer in self.model.layers for v in (layer.kernel, layer.bias)]

    def step(self):
        self.loss = nnx_train_step(self.model, self.optimizer, self.x, self.y)
        jax.block_until_ready((self.loss, [v[...] for v in self.params]))


class TreeStepper(NNXStepper):
    def step(self):
        self.loss = nnx_tree_train_step(self.model, self.optimizer, self.x, self.y)
        jax.block_until_ready((self.loss, [v[...] for v in self.params]))


class SplitStepper:
    def __init__(self, sizes, weights, batch):
        self.model, self.optimizer = nnx_setup(sizes, weights)
        self.x, self.y = (jnp.asarray(a) for a in batch)
        self.graphdef, self.state = nnx.split((self.model, self.optimizer))  # once, outside the loop

    def step(self):
        self.state, self.loss = pure_train_step(self.graphdef, self.state, self.x, self.y)
        jax.block_until_ready((self.loss, self.state))


STEPPERS = dict(
    zip(
        STYLES,
        (TorchStepper, CompiledTorchStepper, LinenStepper, NNXStepper, TreeStepper, SplitStepper),
        strict=True,
    )
)


def make_steppers(size):
    sizes = SIZES[size]
    weights, batch = make_weights(sizes), make_batch(sizes)
    return {style: cls(sizes, weights, batch) for style, cls in STEPPERS.items()}


def check_same_losses(steppers, steps=2):
    """Run `steps` steps in every style, the first one timed (under jit it compiles).

    Returns {style: [loss, ...]}, the largest gap to PyTorch's losses, and {style: first call seconds}.
    """
    losses = {style: [] for style in steppers}
    first = {}
    for step in range(steps):
        for style, stepper in steppers.items():
            if step == 0:
                first[style] = timed(stepper.step)
            else:
                stepper.step()
            losses[style].append(float(stepper.loss))
    reference = np.array(losses[STYLES[0]])
    gap = max(float(np.max(np.abs(np.array(values) - reference))) for values in losses.values())
    return losses, gap, first


# -- torch.compile keeps the state in the objects ---------------------------------------------------


def bn_model_and_data(seed=0):
    """A small PyTorch classifier with BatchNorm, its Adam optimizer, and a batch."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        # No bias before BatchNorm: it would have a zero gradient, which Adam turns into rounding noise.
        torch.nn.Linear(8, 16, bias=False),
        torch.nn.BatchNorm1d(16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 2),
    )
    x, y = torch.randn(BATCH, 8), torch.randint(0, 2, (BATCH,))
    return model, torch.optim.Adam(model.parameters(), lr=0.01), x, y


def compiled_step_writes_state_in_place(steps=3):
    """The compiled step and the eager one, each from the same start: what each wrote into the objects."""
    runs = {}
    for label, step in [("eager", torch_train_step), ("compiled", torch.compile(torch_train_step))]:
        model, optimizer, x, y = bn_model_and_data()
        model.train()
        for _ in range(steps):
            step(model, optimizer, x, y)
        runs[label] = (model, optimizer)
    model, optimizer = runs["compiled"]
    eager_model, eager_optimizer = runs["eager"]
    adam = optimizer.state[model[0].weight]
    return {
        "BatchNorm batches counted": int(model[1].num_batches_tracked),
        "running_mean moved from 0": bool(model[1].running_mean.abs().sum() > 0),
        "Adam steps of the first weight": int(adam["step"]),
        "Adam state of the first weight": sorted(adam),
        "same running_mean as eager": torch.allclose(
            model[1].running_mean, eager_model[1].running_mean, atol=1e-6
        ),
        "same parameters as eager": all(
            torch.allclose(a, b, atol=1e-6)
            for a, b in zip(model.parameters(), eager_model.parameters(), strict=True)
        ),
        "same exp_avg as eager": torch.allclose(
            adam["exp_avg"], eager_optimizer.state[eager_model[0].weight]["exp_avg"], atol=1e-6
        ),
    }


def graphs_of_the_step(size="small"):
    """What torch.compile's tracer captures of the step: graphs, breaks, and why it breaks."""
    sizes = SIZES[size]
    model, optimizer = torch_setup(sizes, make_weights(sizes))
    x, y = (torch.from_numpy(a) for a in make_batch(sizes))
    explained = torch._dynamo.explain(torch_train_step)(model, optimizer, x, y.long())
    reasons = sorted({reason.reason.splitlines()[0] for reason in explained.break_reasons})
    return explained.graph_count, explained.graph_break_count, reasons


def a_mode_switch_recompiles():
    """Compiled prediction, timed: a steady call in training mode, then the first call in eval mode."""
    model, _, x, _ = bn_model_and_data()
    predict = torch.compile(lambda model, x: model(x), dynamic=False)
    with torch.no_grad():
        model.train()
        predict(model, x)  # compiles for training mode
        steady = min(timed(lambda: predict(model, x)) for _ in range(5))
        model.eval()  # the compiled program was built for model.training == True
        first_in_eval = timed(lambda: predict(model, x))
    return steady, first_in_eval


# -- The exercise: two models in one call --------------------------------------------------------


def two_models_in_one_step(size="small"):
    """One jax.vmap'd Linen step trains two models at once; returns it, the states and the batch."""
    sizes = SIZES[size]
    state_a = linen_setup(sizes, make_weights(sizes, seed=0))
    params_b = linen_setup(sizes, make_weights(sizes, seed=2)).params
    # The same apply_fn and tx, so that the two states have the same tree structure and can be stacked.
    state_b = state_a.replace(params=params_b, opt_state=state_a.tx.init(params_b))
    both = jax.tree.map(lambda a, b: jnp.stack([a, b]), state_a, state_b)
    train_both = jax.jit(jax.vmap(linen_train_step, in_axes=(0, None, None)))
    x, y = (jnp.asarray(a) for a in make_batch(sizes))
    return train_both, both, (state_a, state_b), (x, y)


def vmapped_matches_separate(size="small"):
    train_both, both, (state_a, state_b), (x, y) = two_models_in_one_step(size)
    new_both, losses = train_both(both, x, y)
    (new_a, loss_a), (new_b, loss_b) = linen_train_step(state_a, x, y), linen_train_step(state_b, x, y)
    separate = jax.tree.map(lambda a, b: jnp.stack([a, b]), new_a.params, new_b.params)
    same_params = all(
        jax.tree.leaves(
            jax.tree.map(lambda u, v: bool(jnp.allclose(u, v, atol=1e-6)), new_both.params, separate)
        )
    )
    same_losses = bool(jnp.allclose(losses, jnp.stack([loss_a, loss_b]), atol=1e-6))
    return [float(v) for v in losses], same_params and same_losses


# -- Timing ----------------------------------------------------------------------------------------


@dataclass
class Timing:
    first: float  # seconds: the first call, which traces and compiles under jit
    times: list  # seconds: each timed step

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def quartiles(self):
        q1, _, q3 = statistics.quantiles(self.times, n=4)
        return q1, q3


def timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def time_styles(steppers, first, repeats, warmup=WARMUP):
    """Warm every style up, then time one step of each style in turn, `repeats` times."""
    for stepper in steppers.values():
        for _ in range(warmup):
            stepper.step()
    times = {style: [] for style in steppers}
    for _ in range(repeats):
        for style, stepper in steppers.items():  # interleaved: a busy moment hits every style alike
            times[style].append(timed(stepper.step))
    return {style: Timing(first[style], times[style]) for style in steppers}


def fmt(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def timing_table(results):
    """results: {size: {style: Timing}} -> the printed tables, one per size, and the ratios."""
    lines = []
    for size, timings in results.items():
        reference = timings[STYLES[0]].median
        lines += [
            f"{size} network",
            f"{'style':24}{'first call':>10} {'median':>9} {'IQR':>20} {'vs PyTorch':>10}",
        ]
        for style, t in timings.items():
            q1, q3 = t.quartiles
            iqr, ratio = f"{fmt(q1)} – {fmt(q3)}", f"×{t.median / reference:.2f}"
            lines.append(f"{style:24}{fmt(t.first):>10} {fmt(t.median):>9} {iqr:>20} {ratio:>10}")
        lines.append("")
    ratios = [  # (label, style over style, of the medians or of first call over median)
        ("nnx.jit step / split step", "NNX + nnx.jit", "NNX split + jax.jit", "median"),
        ("nnx.jit tree step / split step", "NNX + nnx.jit (tree)", "NNX split + jax.jit", "median"),
        ("torch.compile step / eager step", "PyTorch + torch.compile", "PyTorch eager", "median"),
        ("Linen first call / median", "Linen + jax.jit", "Linen + jax.jit", "first"),
        ("torch.compile first call / median", "PyTorch + torch.compile", "PyTorch + torch.compile", "first"),
    ]
    for label, style, reference, kind in ratios:
        values = {
            size: (t[style].first if kind == "first" else t[style].median) / t[reference].median
            for size, t in results.items()
        }
        digits = 0 if kind == "first" else 2
        lines.append(f"{label}: " + ", ".join(f"{size} ×{r:.{digits}f}" for size, r in values.items()))
    return "\n".join(lines)


def cpu_name():
    """The CPU's model name where Linux tells it (/proc/cpuinfo), else what the platform module knows."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cores():
    """The cores this process may run on (Linux), or all the machine's cores where that is not known."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_report():
    """The machine and the versions: the same on every run on one machine."""
    cores, cpu = usable_cores(), cpu_name()
    lines = [
        f"CPU: {cpu}, {os.cpu_count()} logical cores ({platform.machine()}, {platform.system()})",
        f"JAX devices: {', '.join(d.platform for d in jax.devices())}",
        f"cores this process may use: {cores}",
        f"PyTorch threads: {torch.get_num_threads()}",
        f"python {platform.python_version()}",
    ]
    lines += [
        f"{package} {version(package)}" for package in ["jax", "jaxlib", "flax", "optax", "torch", "numpy"]
    ]
    return "\n".join(lines)


def main():
    use_one_core()
    print("== Machine")
    print(machine_report())

    print("== Same losses")
    steppers = {size: make_steppers(size) for size in SIZES}
    first = {}
    for size in SIZES:
        losses, gap, first[size] = check_same_losses(steppers[size])
        for style, values in losses.items():
            print(f"{size:7}{style:25}" + "  ".join(f"loss {v:.4f}" for v in values))
        print(f"{size}: largest difference from PyTorch below 1e-5: {gap < 1e-5}")
        assert gap < 1e-5

    print("== Timings")
    results = {size: time_styles(steppers[size], first[size], REPEATS[size]) for size in SIZES}
    print(timing_table(results))
    medians_positive = all(t.median > 0 for timings in results.values() for t in timings.values())
    print(f"styles timed per size: {len(STYLES)}, every median positive: {medians_positive}")

    print("== torch.compile and the state in the objects")
    for label, value in compiled_step_writes_state_in_place().items():
        print(f"{label}: {value}")
    graphs, breaks, reasons = graphs_of_the_step()
    print(f"the compiled step: {graphs} graphs, {breaks} graph breaks, because: {reasons}")
    steady, first_in_eval = a_mode_switch_recompiles()
    print(f"after model.eval() the compiled prediction compiles again: {first_in_eval > 100 * steady}")

    print("== Two models in one step")
    losses, same = vmapped_matches_separate()
    print(f"losses of the two models: {losses[0]:.4f}, {losses[1]:.4f}")
    print(f"one vmapped step matches two separate steps: {same}")
    assert same


if __name__ == "__main__":
    main()
