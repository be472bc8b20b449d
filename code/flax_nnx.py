"""Flax NNX: the complete program behind docs/flax-nnx.md.

NNX puts the state back inside the module, as PyTorch does, and its transforms (``nnx.jit``,
``nnx.value_and_grad``) carry the changes out. ``nnx.split`` / ``nnx.merge`` turn a module into a
pure (graphdef, state) pair and back, the bridge to plain ``jax.jit``. The training run is the one
of code/train_state.py (same data, architecture and hyperparameters), done here with NNX in two ways,
and compared with the Linen run, whose code is imported from code/train_state.py.

Run it with ``python code/flax_nnx.py``; tests/test_flax_nnx.py checks what it prints.
The functions are importable: ``from flax_nnx import train_nnx`` with code/ on ``sys.path``.
"""

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx

# The Linen side of the comparison, and the data, sizes and hyperparameters it shares with NNX.
from train_state import (
    DROPOUT_RATE,
    HIDDEN,
    IN_FEATURES,
    LEARNING_RATE,
    NUM_CLASSES,
    create_state,
    cross_entropy,
    fit,
    make_data,
)

NUM_STEPS = 100


class MLP(nnx.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear; parameters are created right here."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.norm = nnx.BatchNorm(HIDDEN, momentum=0.9, rngs=rngs)
        self.dropout = nnx.Dropout(DROPOUT_RATE, rngs=rngs)  # keeps the 'dropout' stream for its masks
        self.dense2 = nnx.Linear(HIDDEN, NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.norm(self.dense1(x)))
        return self.dense2(self.dropout(x))


def keys(seed=0):
    """The data, init and dropout keys, split exactly as code/train_state.py splits them."""
    return jax.random.split(jax.random.key(seed), 3)


def create_model(seed=0):
    """A fresh model and the data, from the same keys as code/train_state.py."""
    data_key, init_key, dropout_key = keys(seed)
    x, y = make_data(data_key)
    return MLP(nnx.Rngs(params=init_key, dropout=dropout_key)), x, y


# -- Custom state: the Counter revisited ---------------------------------------------------------


class Count(nnx.Variable):
    """A variable type of our own, so that filters can tell counts from parameters."""


class Counter(nnx.Module):
    def __init__(self):
        self.count = Count(jnp.array(0))

    def __call__(self):
        print("  (count's Python body runs)")
        self.count[...] += 1  # read and write a Variable with [...]
        return self.count[...]


@nnx.jit
def count_step(counter):
    return counter()


def count_with_plain_jit(counter, times):
    """The module as an argument of plain jax.jit: it runs, and the object's count never changes."""
    count_once = jax.jit(lambda counter: counter())
    return [int(count_once(counter)) for _ in range(times)]


def count_by_returning_the_module(counter, times):
    """Plain jax.jit that returns the module: the count goes on, in a new object every call."""
    count_and_return = jax.jit(lambda counter: (counter(), counter))
    values = []
    for _ in range(times):
        value, counter = count_and_return(counter)
        values.append(int(value))
    return values, counter


def forward_then_eval(model, x):
    """A function that switches the model to evaluation mode inside a compiled call."""
    out = model(x)
    model.eval()
    return out


class Tied(nnx.Module):
    """Two attributes holding the same layer: tied weights, one Variable reachable by two paths."""

    def __init__(self, rngs: nnx.Rngs):
        self.encode = nnx.Linear(HIDDEN, HIDDEN, rngs=rngs)
        self.decode = self.encode

    def __call__(self, h):
        return self.decode(self.encode(h))


def count_with_split_merge(counter, times):
    """What nnx.jit does, by hand: split, a pure function under jax.jit, then update the object."""
    graphdef, state = nnx.split(counter)

    @jax.jit
    def pure_count(state):
        counter = nnx.merge(graphdef, state)  # a temporary module, alive only inside the trace
        value = counter()
        return value, nnx.state(counter)

    values = []
    for _ in range(times):
        value, state = pure_count(state)
        values.append(int(value))
    unchanged_until_update = int(counter.count[...])
    nnx.update(counter, state)
    return values, unchanged_until_update


# -- Training the NNX way: nnx.jit, nnx.value_and_grad, nnx.Optimizer ----------------------------


@nnx.jit
def train_step(model, optimizer, x, y):
    """One step; the model's params, BatchNorm stats and dropout RNG count are updated in place."""

    def loss_fn(model):
        return cross_entropy(model(x), y)

    loss, grads = nnx.value_and_grad(loss_fn)(model)  # gradients with respect to the nnx.Param leaves
    optimizer.update(model, grads)
    return loss


@nnx.jit
def eval_step(model, x, y):
    logits = model(x)
    return cross_entropy(logits, y), (logits.argmax(axis=-1) == y).mean()


def train_nnx(num_steps=NUM_STEPS, seed=0):
    """Train with nnx.jit; return the trained model, the optimizer and the loss of every step."""
    model, x, y = create_model(seed)
    optimizer = nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=nnx.Param)
    model.train()  # BatchNorm uses batch statistics, Dropout is active
    losses = [float(train_step(model, optimizer, x, y)) for _ in range(num_steps)]
    return model, optimizer, losses


# -- Training the functional way: nnx.split / nnx.merge and plain jax.jit ------------------------


def make_pure_train_step(graphdef, tx):
    """A pure step function over (params, rest, opt_state), as in Linen; ``rest`` is every non-Param."""

    @jax.jit
    def pure_train_step(params, rest, opt_state, x, y):
        def loss_fn(params):
            # A throwaway module, alive only inside this trace. copy=True gives it fresh Variables:
            # those in `rest` belong to the jit trace, and BatchNorm may not write them from grad's.
            model = nnx.merge(graphdef, params, rest, copy=True)
            loss = cross_entropy(model(x), y)
            _, _, new_rest = nnx.split(model, nnx.Param, ...)  # new BatchNorm stats and RNG count
            return loss, new_rest

        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, rest, opt_state, loss

    return pure_train_step


def train_functional(num_steps=NUM_STEPS, seed=0):
    """Train with split/merge + jax.jit; write the result back with nnx.update; return like train_nnx."""
    model, x, y = create_model(seed)
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(LEARNING_RATE)
    opt_state = tx.init(params)
    step = make_pure_train_step(graphdef, tx)
    losses = []
    for _ in range(num_steps):
        params, rest, opt_state, loss = step(params, rest, opt_state, x, y)
        losses.append(float(loss))
    nnx.update(model, params, rest)  # the module object now holds the trained state
    return model, opt_state, losses


# -- Linen and NNX: the same function, different random numbers ----------------------------------


def train_linen(num_steps=NUM_STEPS, seed=0):
    """The run of code/train_state.py; return its loss of every step."""
    data_key, init_key, dropout_key = keys(seed)
    x, y = make_data(data_key)
    _, losses = fit(create_state(init_key, x), x, y, dropout_key, num_steps)
    return losses


def linen_variables_in_nnx(seed=0):
    """Copy Linen's initial variables into an NNX model; return both models' eval outputs."""
    data_key, init_key, _ = keys(seed)
    x, _ = make_data(data_key)
    linen_state = create_state(init_key, x)
    params, stats = linen_state.params, linen_state.batch_stats
    model, _, _ = create_model(seed)
    state = nnx.state(model)
    nnx.replace_by_pure_dict(
        state,
        {
            "dense1": params["Dense_0"],
            "norm": params["BatchNorm_0"] | stats["BatchNorm_0"],  # scale, bias | mean, var
            "dense2": params["Dense_1"],
        },
    )
    nnx.update(model, state)
    model.eval()
    linen_out = linen_state.apply_fn({"params": params, "batch_stats": stats}, x, train=False)
    return linen_out, model(x)


def main():
    print("== Eager parameters ==")
    model, x, y = create_model()
    print(f"data: {x.shape[0]} examples, {int(y.sum())} positive, sum of x {float(x.sum()):.4f}")
    kernel = model.dense1.kernel
    print("kernel after construction:", type(kernel).__name__, kernel[...].shape)
    print("nnx.Param:", jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param))))
    print("nnx.BatchStat:", jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))))
    print("nnx.RngState:", jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.RngState))))

    print("== train() and eval() ==")
    print("after construction: use_running_average", model.norm.use_running_average)
    model.eval()  # BatchNorm uses running averages, Dropout does nothing
    print("after eval(): use_running_average", model.norm.use_running_average, end=", ")
    print("deterministic", model.dropout.deterministic)
    saved = nnx.clone(nnx.state(model, nnx.BatchStat))  # nnx.state returns live Variables: clone to keep

    def stats_as_saved():
        return bool(jnp.array_equal(model.norm.mean[...], saved["norm"]["mean"][...]))

    print("eval outputs repeat exactly:", bool(jnp.array_equal(model(x), model(x))))
    print("eval leaves BatchStat unchanged:", stats_as_saved())
    model.train()
    print("after train(): use_running_average", model.norm.use_running_average, end=", ")
    print("deterministic", model.dropout.deterministic)
    print("train outputs differ (new dropout masks):", not bool(jnp.array_equal(model(x), model(x))))
    print("train updates BatchStat:", not stats_as_saved())
    nnx.update(model, saved)  # write the saved statistics back into the model
    print("nnx.update restores BatchStat:", stats_as_saved())

    print("== The Counter revisited ==")
    counter = Counter()
    values = [int(count_step(counter)) for _ in range(3)]
    print("nnx counter under nnx.jit:", values)
    print("counter.count afterwards:", int(counter.count[...]))
    print("leaves of a Counter:", len(jax.tree.leaves(Counter())))
    plain = Counter()
    print("module as an argument of plain jax.jit:", count_with_plain_jit(plain, 3))
    print("its count afterwards:", int(plain.count[...]))
    reader = Counter()
    read_count = jax.jit(lambda: reader.count[...] + 0)
    before = int(read_count())
    reader.count[...] = 10
    print(
        f"a captured module only read under plain jax.jit: {before}, then {int(read_count())} after set to 10"
    )
    try:
        jax.jit(plain.__call__)()
    except flax.errors.TraceContextError as error:
        print("plain jax.jit writing to a captured module raises:", type(error).__name__)
    returned_values, returned = count_by_returning_the_module(plain, 3)
    print("plain jax.jit returning the module:", returned_values)
    print(f"returned count: {int(returned.count[...])}, original's count: {int(plain.count[...])}")
    values, before_update = count_with_split_merge(counter, 3)
    print("split/merge + jax.jit counter:", values)
    print(f"counter.count before nnx.update: {before_update}, after: {int(counter.count[...])}")

    print("== Graph mode and tree mode ==")
    tree_counter = Counter()
    tree_count = nnx.jit(lambda counter: counter(), graph=False)
    print("nnx counter under nnx.jit(graph=False):", [int(tree_count(tree_counter)) for _ in range(3)])
    tree_model, _, _ = create_model()
    stats_before = nnx.clone(nnx.state(tree_model, nnx.BatchStat))
    nnx.jit(lambda model, x: model(x), graph=False)(tree_model, x)
    changed = not bool(jnp.array_equal(tree_model.norm.mean[...], stats_before["norm"]["mean"][...]))
    print("tree mode writes back BatchStat:", changed)
    print("tree mode writes back the dropout RngCount:", int(tree_model.dropout.rngs.count[...]))
    for options in ({}, {"graph_updates": False}, {"graph": False}):
        switched, _, _ = create_model()
        switched.train()
        nnx.jit(forward_then_eval, **options)(switched, x)
        left = switched.dropout.deterministic and switched.norm.use_running_average
        print(f"eval() inside nnx.jit({options}) leaves the call: {left}")
    tied, h = Tied(nnx.Rngs(0)), jnp.ones((1, HIDDEN))
    print("graph mode runs tied weights:", nnx.jit(lambda m, h: m(h))(tied, h).shape)
    returned = jax.jit(lambda m: m)(tied)
    print("tied weights still tied after plain jax.jit:", returned.encode is returned.decode)
    try:
        nnx.jit(lambda m, h: m(h), graph=False)(tied, h)
    except ValueError as error:
        print("tree mode refuses tied weights:", type(error).__name__)

    print("== split / merge ==")
    model.eval()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    print("split into Param and the rest:", sorted(nnx.to_pure_dict(params)), sorted(nnx.to_pure_dict(rest)))
    rebuilt = nnx.merge(*nnx.split(model))
    same = bool(jnp.array_equal(model(x), rebuilt(x)))
    assert same
    print("merge reproduces outputs:", same)
    print("merge shares the Variable objects:", rebuilt.dense1.kernel is model.dense1.kernel)
    independent = nnx.merge(*nnx.split(model), copy=True)
    print("merge with copy=True shares them:", independent.dense1.kernel is model.dense1.kernel)
    same = bool(jnp.array_equal(model(x), nnx.merge(graphdef, params, rest)(x)))
    print("merge of the filtered split reproduces outputs:", same)

    print(f"== Training: {NUM_STEPS} full-batch Adam steps, lr={LEARNING_RATE} ==")
    nnx_model, optimizer, nnx_losses = train_nnx()
    fn_model, _, fn_losses = train_functional()
    linen_losses = train_linen()
    print("optimizer steps:", int(optimizer.step[...]))
    for step in (0, 25, 50, 75, 99):
        print(
            f"step {step:3d}: linen loss {linen_losses[step]:.4f}  nnx.jit loss {nnx_losses[step]:.4f}"
            f"  split/merge loss {fn_losses[step]:.4f}"
        )
    assert nnx_losses[-1] < nnx_losses[0] and fn_losses[-1] < fn_losses[0]
    print("nnx.jit loss went down:", nnx_losses[-1] < nnx_losses[0])
    print("split/merge loss went down:", fn_losses[-1] < fn_losses[0])
    print("linen loss went down:", linen_losses[-1] < linen_losses[0])
    diff = max(abs(a - b) for a, b in zip(nnx_losses, fn_losses, strict=True))
    print(f"max |nnx.jit - split/merge| loss: {diff:.1e}")
    print("linen and nnx losses differ:", linen_losses != nnx_losses)
    linen_out, nnx_out = linen_variables_in_nnx()
    diff = float(jnp.abs(linen_out - nnx_out).max())
    print(f"with Linen's initial variables, max |linen - nnx| eval output: {diff:.1e}")
    for label, trained in [("nnx.jit", nnx_model), ("split/merge", fn_model)]:
        trained.eval()
        loss, accuracy = eval_step(trained, x, y)
        print(f"eval after training, {label}: loss {float(loss):.4f}, accuracy {float(accuracy):.3f}")


if __name__ == "__main__":
    main()
