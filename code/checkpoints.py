"""Saving and restoring training state: the complete program behind docs/checkpoints.md.

One small model (Linear -> BatchNorm -> ReLU -> Dropout -> Linear) is trained with Adam in PyTorch, in Flax
Linen with a ``TrainState`` and in Flax NNX. Each run is interrupted after ``SAVE_AT`` steps and saved
(``torch.save`` of the ``state_dict``s and the random generator's state; Orbax for Flax), restored into
objects built from another seed, and trained to the end. The resumed run ends with exactly the parameters,
batch statistics, optimizer state and random state of a run that was never interrupted. Three traps: a
PyTorch checkpoint without the optimizer's state, one without the generator's state, and a Linen
``TrainState`` restored without a target.

Run it with ``python code/checkpoints.py``; tests/test_checkpoints.py checks what it prints.
The functions are importable: ``from checkpoints import resume_nnx`` with code/ on ``sys.path``.
"""

import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import torch
from flax import linen, nnx
from flax.training import train_state

IN_FEATURES, HIDDEN, NUM_CLASSES, BATCH_SIZE = 4, 16, 2, 32
LEARNING_RATE, TOTAL_STEPS, SAVE_AT = 0.01, 20, 8
DROPOUT_RATE = 0.1


def batch(step):
    """The batch of training step ``step``: a function of the step number only, so a resumed run sees
    the batches the interrupted one would have seen.

    >>> x, y = batch(3)
    >>> x.shape, y.shape, bool((batch(3)[0] == x).all())
    ((32, 4), (32,), True)
    """
    rng = np.random.default_rng([0, step])
    x = rng.standard_normal((BATCH_SIZE, IN_FEATURES), dtype=np.float32)
    y = (x[:, 0] * x[:, 1] + x[:, 2] > 0).astype(np.int32)
    return x, y


def as_numbers(leaf):
    """A leaf as float64 NumPy numbers; a typed random key (an RngKey, the TrainState's key) as its bits."""
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf, np.float64)


def max_abs_diff(a, b):
    """The largest absolute difference between two trees of arrays (or tensors) of the same structure."""
    assert jax.tree.structure(a) == jax.tree.structure(b), "the trees differ in structure"
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.abs(as_numbers(u) - as_numbers(v)).max()) for u, v in pairs)


def saved_tree(checkpointer, path):
    """``{'a/b/c': (shape, dtype)}`` for every array of an Orbax checkpoint, read from its metadata only."""
    tree = checkpointer.metadata(path).item_metadata
    return {
        jax.tree_util.keystr(keys, simple=True, separator="/"): (leaf.shape, str(leaf.dtype))
        for keys, leaf in jax.tree.leaves_with_path(tree)
    }


# -- PyTorch: state_dict() and torch.save ------------------------------------------------------


def make_torch(seed):
    """A model and its Adam optimizer, initialised from ``seed``."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(IN_FEATURES, HIDDEN),
        torch.nn.BatchNorm1d(HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Dropout(DROPOUT_RATE),  # draws its masks from torch's global generator
        torch.nn.Linear(HIDDEN, NUM_CLASSES),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    return model, optimizer


def train_torch(model, optimizer, start, stop):
    """Train in place on the batches of steps ``start`` to ``stop - 1``; returns the losses."""
    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for step in range(start, stop):
        x, y = batch(step)
        loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y).long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def torch_state(model, optimizer):
    """Everything training changes: parameters and buffers, Adam's per-parameter state, the generator."""
    return {
        "model": model.state_dict(),
        "adam": optimizer.state_dict()["state"],
        "rng": torch.get_rng_state(),
    }


def resume_torch(folder, save_optimizer=True, save_rng=True):
    """Train SAVE_AT steps, save, load into objects built from another seed, train to TOTAL_STEPS.

    Returns the model, the optimizer and the first layer's distance to the checkpoint before loading.
    """
    model, optimizer = make_torch(seed=0)
    train_torch(model, optimizer, 0, SAVE_AT)
    checkpoint = {"step": SAVE_AT, "model": model.state_dict()}
    if save_optimizer:
        checkpoint["optimizer"] = optimizer.state_dict()
    if save_rng:
        checkpoint["rng"] = torch.get_rng_state()  # where Dropout's next mask comes from
    torch.save(checkpoint, Path(folder) / "torch.pt")

    model, optimizer = make_torch(seed=1)  # new objects, other initial weights, another generator state
    checkpoint = torch.load(Path(folder) / "torch.pt")
    before = max_abs_diff(model[0].weight.detach(), checkpoint["model"]["0.weight"])
    model.load_state_dict(checkpoint["model"])
    if save_optimizer:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if save_rng:
        torch.set_rng_state(checkpoint["rng"])
    train_torch(model, optimizer, checkpoint["step"], TOTAL_STEPS)
    return model, optimizer, before


# -- Flax Linen: a TrainState saved with Orbax -------------------------------------------------


class LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x, train: bool):
        x = linen.Dense(HIDDEN)(x)
        x = linen.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = linen.Dropout(DROPOUT_RATE, deterministic=not train)(linen.relu(x))
        return linen.Dense(NUM_CLASSES)(x)


class TrainState(train_state.TrainState):
    batch_stats: Any
    key: jax.Array  # Dropout's key: each step folds its own number into it


def make_linen(seed):
    """A fresh TrainState (step 0) for the Linen model, initialised from ``seed``."""
    init_key, dropout_key = jax.random.split(jax.random.key(seed))
    model = LinenMLP()
    variables = model.init(init_key, jnp.zeros((1, IN_FEATURES)), train=False)
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        key=dropout_key,
        tx=optax.adam(LEARNING_RATE),
    )


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@jax.jit
def linen_step(state, x, y):
    def loss_fn(params):
        variables = {"params": params, "batch_stats": state.batch_stats}
        rngs = {"dropout": jax.random.fold_in(state.key, state.step)}  # a new key at every step
        logits, updates = state.apply_fn(variables, x, train=True, mutable=["batch_stats"], rngs=rngs)
        return cross_entropy(logits, y), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    return state.replace(batch_stats=updates["batch_stats"]), loss


def train_linen(state, stop):
    """Train from ``state.step`` up to step ``stop``; returns the new state and the losses."""
    losses = []
    for step in range(int(state.step), stop):
        state, loss = linen_step(state, *batch(step))
        losses.append(float(loss))
    return state, losses


def save_linen(checkpointer, path):
    """Train SAVE_AT steps and save the TrainState; returns it."""
    state, _ = train_linen(make_linen(seed=0), SAVE_AT)
    checkpointer.save(path, state)
    checkpointer.wait_until_finished()  # save() returns at once and writes in a background thread
    return state


def restore_linen(checkpointer, path):
    """Restore into a fresh TrainState built from another seed, the restore's target."""
    return checkpointer.restore(path, make_linen(seed=1))


# -- Flax NNX: nnx.state saved with Orbax, restored into an abstract target -----------------------


class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.norm = nnx.BatchNorm(HIDDEN, momentum=0.9, rngs=rngs)
        self.dropout = nnx.Dropout(DROPOUT_RATE, rngs=rngs)  # keeps its key and count in the model's state
        self.dense2 = nnx.Linear(HIDDEN, NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        return self.dense2(self.dropout(nnx.relu(self.norm(self.dense1(x)))))


def make_nnx(seed):
    model = NNXMLP(nnx.Rngs(seed))
    return model, nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=nnx.Param)


@nnx.jit
def nnx_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(lambda model: cross_entropy(model(x), y))(model)
    optimizer.update(model, grads)
    return loss


def train_nnx(model, optimizer, stop):
    """Train in place from ``optimizer.step`` up to step ``stop``; returns the losses."""
    model.train()
    start = int(optimizer.step[...])
    return [float(nnx_step(model, optimizer, *batch(step))) for step in range(start, stop)]


def nnx_checkpoint(model, optimizer):
    """The whole training state: the model's variables and the optimizer's."""
    return {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}


def abstract_nnx_checkpoint():
    """The checkpoint's tree with shapes and dtypes in place of arrays: nothing is allocated."""
    return nnx_checkpoint(*nnx.eval_shape(lambda: make_nnx(seed=1)))


def resume_nnx(checkpointer, path):
    """Train SAVE_AT steps, save, restore into new objects, train to TOTAL_STEPS.

    Returns the model, the optimizer and the first layer's distance to the checkpoint before the update.
    """
    model, optimizer = make_nnx(seed=0)
    train_nnx(model, optimizer, SAVE_AT)
    checkpointer.save(path, nnx_checkpoint(model, optimizer))
    checkpointer.wait_until_finished()

    model, optimizer = make_nnx(seed=1)  # new objects, other initial weights
    restored = checkpointer.restore(path, abstract_nnx_checkpoint())
    before = max_abs_diff(nnx.state(model.dense1), restored["model"]["dense1"])
    nnx.update(model, restored["model"])
    nnx.update(optimizer, restored["optimizer"])
    train_nnx(model, optimizer, TOTAL_STEPS)
    return model, optimizer, before


# -- The exercise: a CheckpointManager that keeps the last two ------------------------------------


def managed_run(folder):
    """Train NNX for TOTAL_STEPS, saving every 5 steps and keeping the last 2; restore the latest.

    Returns the steps left on disk, the restored checkpoint and the final state of the run.
    """
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(5),  # steps 5, 10, 15, 20
        preservation_policy=ocp.checkpoint_managers.LatestN(2),  # and only the last two kept
    )
    model, optimizer = make_nnx(seed=0)
    model.train()
    with ocp.CheckpointManager(Path(folder) / "run", options=options) as manager:
        for step in range(TOTAL_STEPS):
            nnx_step(model, optimizer, *batch(step))
            manager.save(step + 1, args=ocp.args.StandardSave(nnx_checkpoint(model, optimizer)))
        manager.wait_until_finished()
        kept = list(manager.all_steps())
        target = ocp.args.StandardRestore(abstract_nnx_checkpoint())
        restored = manager.restore(manager.latest_step(), args=target)
    return kept, restored, nnx_checkpoint(model, optimizer)


def print_loss_run(losses):
    print(f"uninterrupted: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")


def print_comparison(resumed, straight, spec=""):
    """One line per part of the state; ``spec`` formats the difference (``""`` prints 0.0 as it is)."""
    for part in resumed:
        diff = max_abs_diff(resumed[part], straight[part])
        print(f"resumed vs uninterrupted, {part}: max |difference| = {diff:{spec}}")


def main():
    folder = tempfile.TemporaryDirectory()
    root = Path(folder.name)
    checkpointer = ocp.StandardCheckpointer()
    x, _ = batch(3)
    print("== Data")
    print("the batch of a step, asked for again, is the same:", bool(np.array_equal(batch(3)[0], x)))

    print("== PyTorch")
    model, optimizer = make_torch(seed=0)
    print_loss_run(train_torch(model, optimizer, 0, TOTAL_STEPS))
    straight = torch_state(model, optimizer)
    model, optimizer, before = resume_torch(root)
    print(f"first layer before load_state_dict: {before:.4f}")
    print_comparison(torch_state(model, optimizer), straight)
    model, optimizer, _ = resume_torch(root, save_optimizer=False)
    print("-- without optimizer.state_dict():")
    print_comparison({"model": model.state_dict()}, straight, spec=".2e")
    steps = optimizer.state_dict()["state"][0]["step"].item()
    straight_steps = straight["adam"][0]["step"].item()
    print(f"Adam's step count at the end: {steps:.0f} (uninterrupted: {straight_steps:.0f})")
    model, optimizer, _ = resume_torch(root, save_rng=False)
    print("-- without torch.get_rng_state():")
    print_comparison({"model": model.state_dict()}, straight, spec=".2e")

    print("== Flax Linen")
    straight, losses = train_linen(make_linen(seed=0), TOTAL_STEPS)
    print_loss_run(losses)
    saved = save_linen(checkpointer, root / "linen")
    tree = saved_tree(checkpointer, root / "linen")
    groups = sorted({name.split("/")[0] for name in tree})
    print("saved arrays:", {group: sum(name.split("/")[0] == group for name in tree) for group in groups})
    state = restore_linen(checkpointer, root / "linen")
    first_layer = [s.params["Dense_0"] for s in (make_linen(seed=1), saved)]
    print(f"first layer before restore: {max_abs_diff(*first_layer):.4f}")
    print("restored:", type(state).__name__, "at step", int(state.step))
    print("optimizer state:", [type(part).__name__ for part in state.opt_state])
    resumed, _ = train_linen(state, TOTAL_STEPS)
    fields = ["params", "batch_stats", "opt_state", "step", "key"]
    print_comparison({f: getattr(resumed, f) for f in fields}, {f: getattr(straight, f) for f in fields})
    print("-- restored without a target:")
    raw = checkpointer.restore(root / "linen")
    print("restored:", type(raw).__name__, "with", list(raw))
    print("optimizer state:", [type(part).__name__ for part in raw["opt_state"]])
    try:
        linen_step(make_linen(seed=1).replace(**raw), *batch(SAVE_AT))
    except AttributeError as error:
        print("first step raises: AttributeError:", error)
    print("-- restored into an abstract target (jax.eval_shape):")
    state = checkpointer.restore(root / "linen", jax.eval_shape(lambda: make_linen(seed=1)))
    print("optimizer state:", [type(part).__name__ for part in state.opt_state])
    state, _ = linen_step(state, *batch(SAVE_AT))
    print("one more step, now at step", int(state.step))

    print("== Flax NNX")
    model, optimizer = make_nnx(seed=0)
    print_loss_run(train_nnx(model, optimizer, TOTAL_STEPS))
    straight = nnx_checkpoint(model, optimizer)
    model, optimizer, before = resume_nnx(checkpointer, root / "nnx")
    print("saved arrays:", len(saved_tree(checkpointer, root / "nnx")))
    print(f"first layer before nnx.update: {before:.4f}")
    print_comparison(nnx_checkpoint(model, optimizer), straight)
    checkpointer.close()

    print("== Cleanup")
    folder.cleanup()
    print("checkpoint folder still exists:", root.exists())

    print("== Exercise: CheckpointManager")
    with tempfile.TemporaryDirectory() as name:
        kept, restored, final = managed_run(name)
    print("steps kept:", kept)
    print("latest checkpoint vs final state: max |difference| =", max_abs_diff(restored, final))


if __name__ == "__main__":
    main()
