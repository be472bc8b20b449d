"""State pitfalls, and their fixes: the complete program behind docs/pitfalls.md.

Run it with ``python code/pitfalls.py``: for each pitfall it prints what the bug gives (``wrong``) and what
the fix gives (``fixed``), one labelled line each; tests/test_pitfalls.py checks them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import linen as nn
from flax import nnx
from flax.training.train_state import TrainState


def raised(action) -> str:
    """The name of the exception ``action()`` raises, or "nothing"."""
    try:
        action()
    except Exception as error:  # any exception: the point is to name it
        return type(error).__name__
    return "nothing"


# -- 1. a jitted function reads Python state once ------------------------------------------------------

SCALE = 1.0


@jax.jit
def scaled_by_global(x):
    return SCALE * x


@jax.jit
def scaled(x, scale):
    return scale * x


def jit_reads_python_state_once():
    global SCALE
    SCALE = 1.0
    before = float(scaled_by_global(2.0))
    SCALE = 10.0
    after = float(scaled_by_global(2.0))
    print(f"1 wrong: scaled(2.0) with the global scale 1.0 then 10.0: {before} then {after}")

    logged = []

    @jax.jit
    def logging_loss(w):
        loss = jnp.sum(w**2)
        logged.append(loss)  # runs once, while tracing
        return loss

    for step in range(3):
        logging_loss(jnp.full(3, step + 1.0))
    tracers = all(isinstance(value, jax.core.Tracer) for value in logged)
    print(f"1 wrong: 3 jitted calls appended {len(logged)} value(s) to the list, all tracers: {tracers}")

    before, after = float(scaled(2.0, 1.0)), float(scaled(2.0, 10.0))
    print(f"1 fixed: scale as an argument, 1.0 then 10.0: {before} then {after}")

    @jax.jit
    def loss_fn(w):
        return jnp.sum(w**2)

    returned = [float(loss_fn(jnp.full(3, step + 1.0))) for step in range(3)]
    print(f"1 fixed: losses returned by 3 jitted calls: {returned}")


# -- 2. writing into an array in place ---------------------------------------------------------------


def arrays_are_immutable():
    x = jnp.zeros(3)

    def write():
        x[0] = 1.0

    print(f"2 wrong: x[0] = 1.0 on a JAX array raises {raised(write)}")
    y = x.at[0].set(1.0)
    print(f"2 fixed: x.at[0].set(1.0) returns {y.tolist()}, x stays {x.tolist()}")


# -- 3. using an array after donating it -------------------------------------------------------------


@functools.partial(jax.jit, donate_argnums=0)
def sgd_step(params, grads):
    return params - 0.25 * grads


def donated_arrays_are_deleted():
    params = jnp.ones(3)
    new_params = sgd_step(params, jnp.ones(3))
    print(f"3 wrong: after donating params, reading them raises {raised(lambda: params.tolist())}")
    params = new_params
    params = sgd_step(params, jnp.ones(3))
    print(f"3 fixed: params = sgd_step(params, grads), twice: {params.tolist()}")


# -- 4. reusing a random key -------------------------------------------------------------------------


def dropout_masks(next_key) -> list[list[int]]:
    """The units a Linen Dropout keeps in 3 steps, each step's key given by next_key()."""
    dropout = nn.Dropout(rate=0.5, deterministic=False)
    ones = jnp.ones((1, 8))
    return [
        (dropout.apply({}, ones, rngs={"dropout": next_key()})[0] != 0).astype(int).tolist() for _ in range(3)
    ]


def reused_key_repeats_masks():
    key = jax.random.key(0)
    masks = dropout_masks(lambda: key)
    print(f"4 wrong: one key for 3 steps, masks {masks}, all equal: {masks.count(masks[0]) == 3}")

    carried = [jax.random.key(0)]

    def next_key():
        carried[0], dropout_key = jax.random.split(carried[0])
        return dropout_key

    masks = dropout_masks(next_key)
    print(f"4 fixed: a split key per step, masks {masks}, all different: {len(set(map(tuple, masks))) == 3}")

    nnx_dropout = nnx.Dropout(rate=0.5, rngs=nnx.Rngs(dropout=0))
    masks = [(nnx_dropout(jnp.ones((1, 8)))[0] != 0).astype(int).tolist() for _ in range(3)]
    print(
        f"4 contrast: NNX Dropout advances its Rngs stream, all different: {len(set(map(tuple, masks))) == 3}"
    )
    torch.manual_seed(0)
    torch_dropout = torch.nn.Dropout(p=0.5)
    masks = [(torch_dropout(torch.ones(1, 8))[0] != 0).int().tolist() for _ in range(3)]
    print(
        f"4 contrast: PyTorch Dropout's hidden generator, all different: {len(set(map(tuple, masks))) == 3}"
    )


# -- 5. Linen: BatchNorm in training mode without mutable ------------------------------------------


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(4)(x)
        return nn.BatchNorm(use_running_average=not train)(x)


def batchnorm_needs_mutable():
    net = Net()
    x = jax.random.normal(jax.random.key(1), (8, 3))
    variables = net.init(jax.random.key(2), x, train=False)
    error = raised(lambda: net.apply(variables, x, train=True))
    print(f"5 wrong: apply in training mode without mutable raises {error}")
    _, updates = net.apply(variables, x, train=True, mutable=["batch_stats"])
    passed_in = variables["batch_stats"]["BatchNorm_0"]["mean"]
    returned = updates["batch_stats"]["BatchNorm_0"]["mean"]
    print(
        f"5 fixed: mutable=['batch_stats'] returns {list(updates)}; mean passed in still zero: "
        f"{not bool(jnp.any(passed_in))}, mean returned moved: {bool(jnp.any(returned))}"
    )


# -- 6. dropping the state that apply_gradients returns ----------------------------------------------


def regression_data():
    xs = jax.random.normal(jax.random.key(0), (16, 3))
    return xs, xs @ jnp.array([[1.0], [-2.0], [3.0]])


def train_state_steps(keep_result: bool) -> tuple[int, list[float]]:
    """Three SGD steps with a TrainState; returns the final step count and the loss before each step."""
    regressor = nn.Dense(1)
    xs, ys = regression_data()

    def mse(params):
        return jnp.mean((regressor.apply({"params": params}, xs) - ys) ** 2)

    params = regressor.init(jax.random.key(1), xs)["params"]
    state = TrainState.create(apply_fn=regressor.apply, params=params, tx=optax.sgd(0.1))
    losses = []
    for _ in range(3):
        loss, grads = jax.value_and_grad(mse)(state.params)
        new_state = state.apply_gradients(grads=grads)
        if keep_result:
            state = new_state
        losses.append(round(float(loss), 3))
    return int(state.step), losses


def apply_gradients_returns_the_state():
    step, losses = train_state_steps(keep_result=False)
    print(f"6 wrong: result of apply_gradients dropped: step {step}, losses {losses}")
    step, losses = train_state_steps(keep_result=True)
    print(f"6 fixed: state = state.apply_gradients(grads=grads): step {step}, losses {losses}")

    xs, ys = regression_data()
    nnx_regressor = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(nnx_regressor, optax.sgd(0.1), wrt=nnx.Param)
    losses = []
    for _ in range(3):
        loss, grads = nnx.value_and_grad(lambda model: jnp.mean((model(xs) - ys) ** 2))(nnx_regressor)
        optimizer.update(nnx_regressor, grads)  # in place
        losses.append(round(float(loss), 3))
    print(f"6 contrast: NNX optimizer.update changes the model in place: losses {losses}")

    torch.manual_seed(0)
    torch_regressor = torch.nn.Linear(3, 1)
    torch_optimizer = torch.optim.SGD(torch_regressor.parameters(), lr=0.1)
    xs_torch, ys_torch = torch.tensor(np.array(xs)), torch.tensor(np.array(ys))
    losses = []
    for _ in range(3):
        loss = ((torch_regressor(xs_torch) - ys_torch) ** 2).mean()
        torch_optimizer.zero_grad()
        loss.backward()
        returned = torch_optimizer.step()  # in place
        losses.append(round(loss.item(), 3))
    print(f"6 contrast: PyTorch optimizer.step in place returns {returned}: losses {losses}")


# -- 7. a plain Python list of layers ----------------------------------------------------------------


class PlainListStack(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.layers = [nnx.Linear(4, 4, rngs=rngs), nnx.Linear(4, 4, rngs=rngs)]


class Stack(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(4, 4, rngs=rngs), nnx.Linear(4, 4, rngs=rngs)])
        self.scales = nnx.data([jnp.ones(4), jnp.full(4, 2.0)])


class TorchPlainListStack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)]


class TorchStack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)])


def plain_lists_hide_layers():
    error = raised(lambda: PlainListStack(nnx.Rngs(0)))
    print(f"7 wrong: NNX, a plain list of Linear layers as an attribute raises {error}")
    found = len(list(TorchPlainListStack().parameters()))
    print(f"7 wrong: PyTorch, a plain list of Linear layers: {found} parameter tensors found")
    stack = Stack(nnx.Rngs(0))
    params = len(jax.tree.leaves(nnx.state(stack, nnx.Param)))
    arrays = len(jax.tree.leaves(nnx.state(stack)))
    print(f"7 fixed: NNX, nnx.List of 2 layers, nnx.data of 2 arrays: {params} Param arrays, {arrays} in all")
    found = len(list(TorchStack().parameters()))
    print(f"7 fixed: PyTorch, nn.ModuleList of 2 layers: {found} parameter tensors found")


# -- 8. evaluating a model left in training mode -----------------------------------------------------


class Classifier(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(4, 8, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.linear2 = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.linear1(x)))
        return self.linear2(self.dropout(x))


def nnx_two_calls(model, batch) -> tuple[bool, bool]:
    """Whether two calls on the same batch agree, and whether BatchNorm's running mean moved."""
    mean_before = model.bn.mean[...]
    first, second = model(batch), model(batch)
    return bool(jnp.array_equal(first, second)), not bool(jnp.array_equal(mean_before, model.bn.mean[...]))


def torch_two_calls(model, batch) -> tuple[bool, bool, bool]:
    """As nnx_two_calls, and whether the output records a graph for backpropagation."""
    mean_before = model[1].running_mean.clone()
    first, second = model(batch), model(batch)
    return (
        torch.equal(first, second),
        not torch.equal(mean_before, model[1].running_mean),
        first.requires_grad,
    )


def training_mode_at_evaluation():
    model = Classifier(nnx.Rngs(0))
    batch = jax.random.normal(jax.random.key(3), (4, 4))
    agree, moved = nnx_two_calls(model, batch)
    print(f"8 wrong: NNX in training mode: two calls agree: {agree}, BatchNorm mean changed: {moved}")
    model.eval()
    agree, moved = nnx_two_calls(model, batch)
    print(f"8 fixed: NNX after model.eval(): two calls agree: {agree}, BatchNorm mean changed: {moved}")

    torch.manual_seed(0)
    torch_model = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(8, 2),
    )
    torch_batch = torch.randn(4, 4)
    agree, moved, graph = torch_two_calls(torch_model, torch_batch)
    print(
        f"8 wrong: PyTorch in training mode: two calls agree: {agree}, running_mean changed: {moved}, "
        f"output records a graph: {graph}"
    )
    torch_model.eval()
    with torch.no_grad():
        agree, moved, graph = torch_two_calls(torch_model, torch_batch)
    print(
        f"8 fixed: PyTorch after model.eval(), under torch.no_grad(): two calls agree: {agree}, "
        f"running_mean changed: {moved}, output records a graph: {graph}"
    )


# -- 9. an NNX model given to plain jax.jit ----------------------------------------------------------


def regression_step(model, optimizer):
    """One SGD step of the pitfall-6 regression, in place on the NNX objects (under nnx.jit)."""
    xs, ys = regression_data()
    loss, grads = nnx.value_and_grad(lambda model: jnp.mean((model(xs) - ys) ** 2))(model)
    optimizer.update(model, grads)
    return loss


def nnx_regression_steps(step_fn, returns_objects=False) -> tuple[int, list[float]]:
    """Three steps with ``step_fn``; returns the optimizer's final step count and the loss of each step."""
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    losses = []
    for _ in range(3):
        if returns_objects:
            loss, model, optimizer = step_fn(model, optimizer)
        else:
            loss = step_fn(model, optimizer)
        losses.append(round(float(loss), 3))
    return int(optimizer.step[...]), losses


@jax.jit
def returning_step(model, optimizer):
    """Plain jax.jit that returns the objects it updated, for the caller to keep."""
    return regression_step(model, optimizer), model, optimizer


def nnx_models_under_plain_jit():
    step, losses = nnx_regression_steps(jax.jit(regression_step))
    print(f"9 wrong: NNX step under plain jax.jit: optimizer.step {step}, losses {losses}")
    step, losses = nnx_regression_steps(nnx.jit(regression_step))
    print(f"9 fixed: the same step under nnx.jit: optimizer.step {step}, losses {losses}")
    step, losses = nnx_regression_steps(returning_step, returns_objects=True)
    print(f"9 fixed: plain jax.jit returning the objects: optimizer.step {step}, losses {losses}")


# -- 10. a Linen train flag through jax.jit -------------------------------------------------------------


class FlagNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(4)(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        return nn.Dropout(0.5, deterministic=not train)(x)


def apply_net(variables, x, train):
    return FlagNet().apply(variables, x, train, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])


def train_flag_must_be_static():
    xs, _ = regression_data()
    variables = FlagNet().init(jax.random.key(0), xs, train=False)
    error = raised(lambda: jax.jit(apply_net)(variables, xs, True))
    print(f"10 wrong: train as an ordinary argument of jax.jit raises {error}")
    traces = []

    def traced_apply(variables, x, train):
        traces.append(train)
        return apply_net(variables, x, train)

    forward = jax.jit(traced_apply, static_argnames="train")
    for train in [True, False, True]:
        forward(variables, xs, train=train)
    print(f"10 fixed: static_argnames='train': 3 calls traced for {traces}")


def main():
    jit_reads_python_state_once()
    arrays_are_immutable()
    donated_arrays_are_deleted()
    reused_key_repeats_masks()
    batchnorm_needs_mutable()
    apply_gradients_returns_the_state()
    plain_lists_hide_layers()
    training_mode_at_evaluation()
    nnx_models_under_plain_jit()
    train_flag_must_be_static()


if __name__ == "__main__":
    main()
