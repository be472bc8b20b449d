"""Flax's training state: the complete program behind docs/train-state.md.

A Linen model with BatchNorm and Dropout, trained with a ``TrainState`` that carries the parameters,
the optimizer state, the step count and the BatchNorm statistics from one jitted step to the next.

Run it with ``python code/train_state.py``; tests/test_train_state.py checks what it prints.
The functions are importable: ``from train_state import train`` with code/ on ``sys.path``.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax.training import train_state

# code/flax_nnx.py repeats these values: it trains the same model on the same data with NNX.
NUM_EXAMPLES, IN_FEATURES, HIDDEN, NUM_CLASSES = 256, 4, 16, 2
DROPOUT_RATE, LEARNING_RATE = 0.1, 0.01


def make_data(key, num_examples=NUM_EXAMPLES):
    """Seeded 2-class data: the label says whether ``x0 * x1 + x2`` is positive.

    >>> x, y = make_data(jax.random.key(0))
    >>> x.shape, y.shape, y.dtype
    ((256, 4), (256,), dtype('int32'))
    """
    x = jax.random.normal(key, (num_examples, IN_FEATURES))
    y = (x[:, 0] * x[:, 1] + x[:, 2] > 0).astype(jnp.int32)
    return x, y


class MLP(nn.Module):
    """Dense -> BatchNorm -> ReLU -> Dropout -> Dense; ``train`` switches BatchNorm and Dropout."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(HIDDEN)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        x = nn.Dropout(rate=DROPOUT_RATE, deterministic=not train)(x)
        return nn.Dense(NUM_CLASSES)(x)


class TrainState(train_state.TrainState):
    """The stock TrainState (step, apply_fn, params, tx, opt_state) plus the BatchNorm statistics."""

    batch_stats: Any


def create_state(key, x):
    """Initialize the model on a sample batch and wrap its variables in a TrainState."""
    model = MLP()
    variables = model.init(key, x, train=False)  # {'params': ..., 'batch_stats': ...}
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=optax.adam(LEARNING_RATE),
    )


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@jax.jit
def train_step(state, x, y, dropout_key):
    """One optimization step; returns the new state and the loss (computed before the update)."""
    step_key = jax.random.fold_in(dropout_key, state.step)  # a fresh dropout mask at every step

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            x,
            train=True,
            mutable=["batch_stats"],  # BatchNorm writes new running averages into `updates`
            rngs={"dropout": step_key},
        )
        return cross_entropy(logits, y), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)  # a new state: params, opt_state and step + 1
    state = state.replace(batch_stats=updates["batch_stats"])
    return state, loss


@jax.jit
def eval_step(state, x, y):
    """Loss and accuracy with BatchNorm's running averages and no dropout; the state is not changed."""
    logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
    accuracy = (logits.argmax(axis=-1) == y).mean()
    return cross_entropy(logits, y), accuracy


def fit(state, x, y, dropout_key, num_steps):
    """Run ``num_steps`` full-batch train steps; return the final state and the loss of every step."""
    losses = []
    for _ in range(num_steps):
        state, loss = train_step(state, x, y, dropout_key)
        losses.append(float(loss))
    return state, losses


def train(num_steps, seed=0):
    """Train from scratch on seeded data; return the loss of every step."""
    data_key, init_key, dropout_key = jax.random.split(jax.random.key(seed), 3)
    x, y = make_data(data_key)
    _, losses = fit(create_state(init_key, x), x, y, dropout_key, num_steps)
    return losses


def trees_equal(a, b):
    """True when two pytrees have the same structure and identical arrays.

    >>> a, b = {'w': jnp.ones(2)}, {'w': jnp.zeros(2)}
    >>> trees_equal(a, a), trees_equal(a, b)
    (True, False)
    """
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def main():
    data_key, init_key, dropout_key = jax.random.split(jax.random.key(0), 3)
    x, y = make_data(data_key)
    print(f"data: {x.shape[0]} examples, {int(y.sum())} positive, sum of x {float(x.sum()):.4f}")
    state = create_state(init_key, x)
    print("params:", jax.tree.map(jnp.shape, state.params))
    print("batch_stats:", jax.tree.map(jnp.shape, state.batch_stats))

    print("== One train step and one eval step ==")
    new_state, _ = train_step(state, x, y, dropout_key)
    print("step after one train step:", int(new_state.step))
    print("old state's step:", int(state.step))
    print(
        "old state still holds the initial params:",
        trees_equal(state.params, create_state(init_key, x).params),
    )
    print("params changed in the new state:", not trees_equal(state.params, new_state.params))
    spare_state, _ = train_step(state, x, y, dropout_key)  # a state of its own, to donate
    kept = spare_state
    newer_state, _ = jax.jit(train_step, donate_argnums=0)(spare_state, x, y, dropout_key)
    deleted = all(leaf.is_deleted() for leaf in jax.tree.leaves(kept.params))
    print(
        f"a donating step returns step {int(newer_state.step)}; the donated state's arrays deleted: {deleted}"
    )
    changed = not trees_equal(state.batch_stats, new_state.batch_stats)
    assert changed
    print("batch_stats changed in train step:", changed)
    # In eval mode BatchNorm reads the running averages and writes nothing: asking for the
    # 'batch_stats' collection back returns exactly the statistics that went in.
    _, updates = new_state.apply_fn(
        {"params": new_state.params, "batch_stats": new_state.batch_stats},
        x,
        train=False,
        mutable=["batch_stats"],
    )
    unchanged = trees_equal(new_state.batch_stats, updates["batch_stats"])
    assert unchanged
    print("batch_stats unchanged in eval:", unchanged)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    eval_a = state.apply_fn(variables, x, train=False)
    eval_b = state.apply_fn(variables, x, train=False)
    print("eval outputs repeat exactly (no dropout):", bool(jnp.array_equal(eval_a, eval_b)))
    try:
        state.apply_fn(variables, x, train=True, rngs={"dropout": dropout_key})
    except flax.errors.ModifyScopeVariableError as error:
        print("train-mode apply without mutable raises:", type(error).__name__)

    print("== Training ==")
    state, losses = fit(create_state(init_key, x), x, y, dropout_key, num_steps=100)
    for step in (0, 25, 50, 75, 99):
        print(f"step {step:3d}: loss {losses[step]:.4f}")
    assert losses[-1] < losses[0]
    print("loss went down:", losses[-1] < losses[0])
    loss, accuracy = eval_step(state, x, y)
    print(f"eval after 100 steps: loss {float(loss):.4f}, accuracy {float(accuracy):.3f}")


if __name__ == "__main__":
    main()
