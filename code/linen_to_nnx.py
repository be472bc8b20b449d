"""From Linen to NNX, and back: the complete program behind docs/linen-to-nnx.md.

One network, Dense -> BatchNorm -> ReLU -> Dropout -> Dense, written in Flax Linen and in Flax NNX. The
program shows what ``nnx.bridge.ToNNX`` makes of a Linen module's collections (NNX variable types, paths
without the collection), loads a Linen checkpoint (``params/...`` and ``batch_stats/...``, saved with
Orbax) into the native NNX model and proves by the outputs that it is the same function, writes an NNX
model's state back in Linen's layout, shows what ``nnx.bridge.ToLinen`` keeps of an NNX module, and what
both wrappers do with a collection or a variable type the registry does not know. It ends with the
migration table, built from the objects.

Run it with ``python code/linen_to_nnx.py``; tests/test_linen_to_nnx.py checks what it prints.
The functions are importable: ``from linen_to_nnx import load_linen_variables`` with code/ on ``sys.path``.
"""

import dataclasses
import inspect
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import linen as nn
from flax import nnx
from flax.errors import ModifyScopeVariableError
from flax.traverse_util import flatten_dict, unflatten_dict

IN_FEATURES, HIDDEN, NUM_CLASSES, NUM_EXAMPLES = 4, 16, 3, 32
DROPOUT_RATE, LEARNING_RATE, LINEN_STEPS = 0.1, 0.01, 10

# The names Flax registers at import, collection -> NNX variable type.
REGISTERED = ["params", "batch_stats", "cache", "intermediates", "perturbations"]

# Linen names its submodules by class and order; the NNX model names them by attribute.
LINEN_TO_NNX_NAMES = {"Dense_0": "dense1", "BatchNorm_0": "norm", "Dense_1": "dense2"}


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_EXAMPLES, IN_FEATURES)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=NUM_EXAMPLES).astype(np.int32)
    return jnp.asarray(x), jnp.asarray(y)


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(HIDDEN)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        x = nn.Dropout(DROPOUT_RATE, deterministic=not train)(x)
        return nn.Dense(NUM_CLASSES)(x)


class MLP(nnx.Module):
    """The same network in NNX: the variables exist as soon as the object does."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.norm = nnx.BatchNorm(HIDDEN, momentum=0.9, rngs=rngs)
        self.dropout = nnx.Dropout(DROPOUT_RATE, rngs=rngs)
        self.dense2 = nnx.Linear(HIDDEN, NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.norm(self.dense1(x)))
        return self.dense2(self.dropout(x))


def max_diff(a, b):
    return float(jnp.abs(a - b).max())


def slash(path):
    return "/".join(map(str, path))


# -- Linen inside NNX: ToNNX ---------------------------------------------------------------------


def bridge_linen(x, seed=0):
    """The Linen model as an NNX module; lazy_init runs Linen's init on a sample input."""
    bridged = nnx.bridge.ToNNX(LinenMLP(), rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    return bridged.lazy_init(x, train=False)


def as_linen_variables(state, rename=None):
    """An NNX state in Linen's layout: {collection: {module: {name: array}}}, collection from the type."""
    rename = rename or {}
    flat = {}
    for path, variable in nnx.to_flat_state(state):
        collection = nnx.variable_name_from_type(type(variable))
        flat[(collection, rename.get(path[0], path[0]), *path[1:])] = variable[...]
    return unflatten_dict(flat)


def stream_counts(bridged):
    """How many keys each stream of the wrapper's Rngs has handed out."""
    streams = nnx.to_pure_dict(nnx.state(bridged, nnx.RngCount))["to_nnx__rngs"]
    return {name: int(stream["count"]) for name, stream in streams.items()}


@nnx.jit
def bridged_train_step(model, optimizer, x, y):
    def loss_fn(model):
        logits = model(x, train=True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


# -- A Linen checkpoint, loaded into the native NNX model ----------------------------------------


def train_linen(x, y, seed=0, num_steps=LINEN_STEPS):
    """A short Linen run: Adam on params, BatchNorm's running averages in batch_stats."""
    init_key, dropout_key = jax.random.split(jax.random.key(seed))
    module = LinenMLP()
    variables = module.init(init_key, x, train=False)
    params, batch_stats = variables["params"], variables["batch_stats"]
    tx = optax.adam(LEARNING_RATE)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, batch_stats, opt_state, key):
        def loss_fn(params):
            logits, updates = module.apply(
                {"params": params, "batch_stats": batch_stats},
                x,
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": key},
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, updates["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    for i in range(num_steps):
        params, batch_stats, opt_state, _ = step(
            params, batch_stats, opt_state, jax.random.fold_in(dropout_key, i)
        )
    return {"params": params, "batch_stats": batch_stats}


def save_and_restore(variables, folder):
    """Save the Linen variables with Orbax, list the checkpoint's paths, restore it as plain dicts."""
    path = Path(folder) / "linen"
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, variables)
        checkpointer.wait_until_finished()
        tree = checkpointer.metadata(path).item_metadata
        names = [
            jax.tree_util.keystr(keys, simple=True, separator="/")
            for keys, _ in jax.tree.leaves_with_path(tree)
        ]
        restored = checkpointer.restore(path)
    return names, restored


def load_linen_variables(model, variables, rename=LINEN_TO_NNX_NAMES):
    """Write Linen variables into an NNX model, checking each path, type and shape; return the mapping."""
    targets = dict(nnx.to_flat_state(nnx.state(model)))  # path -> the model's own Variable
    mapping = []
    for collection, tree in variables.items():
        expected_type = nnx.variable_type_from_name(collection)  # 'params' -> Param, ...
        for (module, *names), array in flatten_dict(tree).items():
            path = (rename[module], *names)
            variable = targets[path]
            assert type(variable) is expected_type, (path, type(variable), expected_type)
            assert variable.shape == array.shape, (path, variable.shape, array.shape)
            variable[...] = array  # a live Variable: this writes into the model
            mapping.append((slash((collection, module, *names)), slash(path), type(variable).__name__))
    return mapping


# -- NNX inside Linen: ToLinen --------------------------------------------------------------------


class CountedMLP(MLP):
    """The MLP, counting how many objects of it are built."""

    built = 0

    def __init__(self, rngs: nnx.Rngs):
        CountedMLP.built += 1
        super().__init__(rngs)


def evaluate(model, x):
    """Run an NNX model in evaluation mode, on a view of it (the model itself is not switched)."""
    return nnx.view(model, deterministic=True, use_running_average=True)(x)


# -- What the registry does not know ---------------------------------------------------------------


class SubParam(nnx.Param):
    """A subclass of a registered type: the registry compares exact types."""


class Count(nnx.Variable):
    """A variable type of our own, not registered."""


class LinenCounting(nn.Module):
    """A Linen module with a collection of its own, ``counter``."""

    @nn.compact
    def __call__(self, x):
        calls = self.variable("counter", "calls", jnp.zeros, (), jnp.int32)
        calls.value += 1
        return nn.Dense(2)(x)


class NNXCounting(nnx.Module):
    """An NNX module with a variable of type ``Count``."""

    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(IN_FEATURES, 2, rngs=rngs)
        self.calls = Count(jnp.zeros((), jnp.int32))

    def __call__(self, x):
        self.calls[...] += 1
        return self.linear(x)


def lookup(function, argument):
    """The registry's answer, or the name of the error it raises."""
    try:
        found = function(argument)
    except ValueError:
        return "ValueError"
    return found.__name__ if isinstance(found, type) else repr(found)


# -- The migration table --------------------------------------------------------------------------


def type_name(value):
    return "jax.Array" if isinstance(value, jax.Array) else type(value).__name__


def mode_attributes(model):
    """The attributes that model.eval() changes, read by comparing the submodules before and after."""
    model.train()
    before = {path: dict(vars(module)) for path, module in nnx.iter_modules(model)}
    model.eval()
    changed = []
    for path, module in nnx.iter_modules(model):
        for name, value in vars(module).items():
            if isinstance(value, bool) and before[path].get(name) != value:
                changed.append(slash((*path, name)))
    model.train()
    return sorted(changed)


def names(items):
    return ", ".join(f"`{item}`" for item in items)


def migration_rows(linen_variables, linen_update, native):
    """(concept, Linen, NNX) rows of the migration table, each cell read from the objects."""
    collections = sorted(linen_variables)
    num_variables = len(nnx.to_flat_state(nnx.state(native, nnx.Not(nnx.RngState))))
    random_state = nnx.to_flat_state(nnx.state(native, nnx.RngState))
    rows = [
        (
            "creating the variables",
            f"`init(key, x)` returns a `{type_name(linen_variables)}` of " + names(collections),
            f"`MLP(rngs)` holds {num_variables} variables (plus {len(random_state)} `RngState`) when built",
        )
    ]
    for collection in collections + ["cache", "intermediates", "perturbations"]:
        variable_type = nnx.variable_type_from_name(collection)
        found = {type(v) for _, v in nnx.to_flat_state(nnx.state(native, variable_type))}
        where = "in this model" if found else "not in this model"
        assert found in ({variable_type}, set())
        rows.append(
            (
                f"collection `{collection}`",
                f"`variables['{collection}']`",
                f"`nnx.{variable_type.__name__}` ({where})",
            )
        )
    rng_types = sorted({type(v).__name__ for _, v in random_state})
    rows.append(
        (
            "random streams",
            "a key per `apply` (`rngs=`), in none of " + names(collections),
            "stored in the model: " + ", ".join(f"`nnx.{t}`" for t in rng_types),
        )
    )
    out, updates = linen_update
    rows.append(
        (
            "updating state",
            f"`apply(..., mutable=[...])` returns `({type_name(out)}, {type_name(updates)})`",
            f"`model(x)` returns a `{type_name(native(jnp.zeros((1, IN_FEATURES))))}`, writes in place",
        )
    )
    attributes = mode_attributes(native)
    # The Linen layers take the same settings as fields, which LinenMLP sets from its argument.
    fields = sorted({attribute.split("/")[-1] for attribute in attributes})
    linen_fields = {field.name for layer in (nn.BatchNorm, nn.Dropout) for field in dataclasses.fields(layer)}
    assert set(fields) <= linen_fields
    rows.append(
        (
            "training or evaluation",
            "in this model, an argument "
            + names(linen_mode_arguments())
            + " of `__call__` that the code passes to "
            + "/".join(f"`{field}`" for field in fields),
            "attributes set by `.train()`/`.eval()`: " + names(attributes),
        )
    )
    return rows


def linen_mode_arguments():
    return [name for name in inspect.signature(LinenMLP.__call__).parameters if name not in ("self", "x")]


def main():
    x, y = make_data()
    print(f"data: x {tuple(x.shape)}, y {tuple(y.shape)}")

    print("== ToNNX ==")
    linen_vars = LinenMLP().init(jax.random.key(0), x, train=False)
    print("Linen collections:", sorted(linen_vars))
    empty = nnx.bridge.ToNNX(LinenMLP(), rngs=nnx.Rngs(params=0, dropout=1))
    print("variables before lazy_init:", len(nnx.to_flat_state(nnx.state(empty, nnx.Not(nnx.RngState)))))
    rngs = nnx.Rngs(params=0, dropout=1)
    bridged = nnx.bridge.ToNNX(LinenMLP(), rngs=rngs).lazy_init(x, train=False)  # what bridge_linen does
    for path, variable in nnx.to_flat_state(nnx.state(bridged)):
        print(f"bridged {slash(path)}: {type(variable).__name__} {tuple(variable.shape)}")
    print("to_nnx__rngs is the Rngs given:", bridged.to_nnx__rngs is rngs)
    print("keys drawn from the Rngs given:", {name: int(stream.count[...]) for name, stream in rngs.items()})
    for collection in REGISTERED:
        variable_type = nnx.variable_type_from_name(collection)
        back = nnx.variable_name_from_type(variable_type)
        print(f"registry: {collection!r} -> {variable_type.__name__} -> {back!r}")
    for variable_type in [nnx.Param, SubParam, Count, nnx.RngKey]:
        print(
            f"variable_name_from_type({variable_type.__name__}):",
            lookup(nnx.variable_name_from_type, variable_type),
        )
    back = as_linen_variables(nnx.state(bridged, nnx.Not(nnx.RngState)))
    print("bridged state in Linen layout:", {c: sorted(t) for c, t in sorted(back.items())})
    linen_out = LinenMLP().apply(back, x, train=False)
    print("ToNNX eval output vs Linen apply, max |diff|:", max_diff(bridged(x, train=False), linen_out))
    try:
        bridged(x, train=True)
    except ModifyScopeVariableError as error:
        print("train=True without mutable raises:", type(error).__name__)
    mean_variable = bridged.BatchNorm_0["mean"]
    state_before = nnx.state(bridged)
    counts_before = stream_counts(bridged)
    first = bridged(x, train=True, mutable=["batch_stats"])
    second = bridged(x, train=True, mutable=["batch_stats"])
    new_mean = bridged.BatchNorm_0["mean"][...]
    print("train call with mutable returns:", type_name(first))
    print(
        "mutable=['batch_stats'] changes the running mean:",
        not bool(jnp.array_equal(mean_variable[...], new_mean)),
    )
    print("  the same Variable object:", bridged.BatchNorm_0["mean"] is mean_variable)
    print(
        "  the state taken before has the new mean:",
        bool(jnp.array_equal(state_before["BatchNorm_0"]["mean"][...], new_mean)),
    )
    print("two train calls differ (new dropout keys):", not bool(jnp.array_equal(first, second)))
    print(f"stream counts: {counts_before} -> {stream_counts(bridged)}")
    reference = MLP(nnx.Rngs(params=0, dropout=1))
    reference_mean = reference.norm.mean
    before = reference_mean[...]
    reference(x)  # a new NNX module is in training mode: BatchNorm writes into its variables
    print(
        "native BatchNorm: the same Variable object:",
        reference.norm.mean is reference_mean,
        "changed:",
        not bool(jnp.array_equal(before, reference_mean[...])),
    )
    optimizer = nnx.Optimizer(bridged, optax.adam(LEARNING_RATE), wrt=nnx.Param)
    mean_before = bridged.BatchNorm_0["mean"][...]
    losses = [float(bridged_train_step(bridged, optimizer, x, y)) for _ in range(5)]
    print("bridged loss under nnx.jit:", " ".join(f"{loss:.4f}" for loss in losses))
    print("optimizer moments for:", sorted(optimizer.opt_state[0].mu))
    mean_after = bridged.BatchNorm_0["mean"][...]
    print("running mean moved by the jitted steps:", not bool(jnp.array_equal(mean_before, mean_after)))

    print("== Linen checkpoint into native NNX ==")
    trained = train_linen(x, y)
    with tempfile.TemporaryDirectory() as folder:
        names, restored = save_and_restore(trained, folder)
    for name in names:
        print("checkpoint:", name)
    native = MLP(nnx.Rngs(params=0, dropout=1))
    mapping = load_linen_variables(native, restored)
    for linen_path, nnx_path, kind in mapping:
        print(f"load {linen_path} -> {nnx_path} ({kind})")
    native.eval()
    reference = LinenMLP().apply(restored, x, train=False)
    print("native NNX vs Linen, eval, max |diff|:", max_diff(native(x), reference))
    params_only = MLP(nnx.Rngs(params=0, dropout=1))
    load_linen_variables(params_only, {"params": restored["params"]})
    params_only.eval()
    print("params only, batch_stats left at init, max |diff|:", max_diff(params_only(x), reference))
    native.train()
    native(x)  # one training-mode pass: new running averages, written in place
    native.eval()
    inverse = {nnx_name: linen_name for linen_name, nnx_name in LINEN_TO_NNX_NAMES.items()}
    written_back = as_linen_variables(nnx.state(native, nnx.Not(nnx.RngState)), inverse)
    print("written back:", {c: sorted(t) for c, t in sorted(written_back.items())})
    print(
        "Linen apply on the written-back variables vs NNX, max |diff|:",
        max_diff(LinenMLP().apply(written_back, x, train=False), native(x)),
    )

    print("== Exercise: the checkpoint in a ToNNX wrapper ==")
    wrapper = bridge_linen(x, seed=7)
    same_names = {name: name for name in restored["params"]}  # ToNNX keeps Linen's module names
    for linen_path, nnx_path, kind in load_linen_variables(wrapper, restored, rename=same_names):
        print(f"load {linen_path} -> {nnx_path} ({kind})")
    print("ToNNX with the checkpoint vs Linen, max |diff|:", max_diff(wrapper(x, train=False), reference))

    print("== ToLinen ==")
    wrapped = nnx.bridge.to_linen(CountedMLP)
    try:
        wrapped.init(jax.random.key(0), x)
    except KeyError as error:
        print("init with one key raises: KeyError", error)
    built = CountedMLP.built
    variables = wrapped.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
    shapes = jax.tree.map(jnp.shape, variables)
    print("ToLinen collections:", {c: sorted(t) for c, t in sorted(shapes.items())})
    print("running mean from init, all zeros:", bool((variables["batch_stats"]["norm"]["mean"] == 0).all()))
    bare = [wrapped.apply(variables, x) for _ in range(2)]
    print("apply without rngs or mutable returns:", type_name(bare[0]))
    print("  twice, equal outputs:", bool(jnp.array_equal(*bare)))
    keyed = wrapped.apply(variables, x, rngs={"dropout": jax.random.key(2)})
    print("  differs from apply with a dropout key:", not bool(jnp.array_equal(bare[0], keyed)))
    seeded = MLP(nnx.Rngs(default=0))  # what the wrapper builds when apply is given no key
    nnx.update(seeded, variables["params"], variables["batch_stats"])
    print("  equal to MLP(nnx.Rngs(default=0)) in training mode:", bool(jnp.array_equal(bare[0], seeded(x))))
    out, updates = wrapped.apply(variables, x, mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})
    old_mean, new_mean = variables["batch_stats"]["norm"]["mean"], updates["batch_stats"]["norm"]["mean"]
    print("apply with mutable returns updates for:", sorted(updates))
    print("  batch_stats changed:", not bool(jnp.array_equal(old_mean, new_mean)))
    print("  same output as with the key alone:", bool(jnp.array_equal(out, keyed)))
    probe = MLP(nnx.Rngs(params=0, dropout=1))
    view = nnx.view(probe, deterministic=True, use_running_average=True)
    print("nnx.view:", view.norm.use_running_average, view.dropout.deterministic, end="; ")
    print("original:", probe.norm.use_running_average, probe.dropout.deterministic, end="; ")
    print("same Variable objects:", view.dense1.kernel is probe.dense1.kernel)
    eval_out = wrapped.apply(variables, x, nnx_method=evaluate)
    print("objects built by init and 5 applies:", CountedMLP.built - built)
    twin = MLP(nnx.Rngs(params=5, dropout=6))
    nnx.update(twin, variables["params"], variables["batch_stats"])
    twin.eval()
    print("ToLinen eval vs native NNX with the same variables, max |diff|:", max_diff(eval_out, twin(x)))

    print("== Unregistered collections and types ==")
    print("before: 'counter' ->", lookup(nnx.variable_type_from_name, "counter"), end="; ")
    print("Count ->", lookup(nnx.variable_name_from_type, Count))
    counted = nnx.bridge.ToNNX(LinenCounting(), rngs=nnx.Rngs(0)).lazy_init(x)
    counter_type = type(counted.calls)
    print(
        "ToNNX: 'counter' ->",
        counter_type.__name__,
        "a subclass of",
        [base.__name__ for base in counter_type.__bases__],
    )
    linen_counting = nnx.bridge.to_linen(NNXCounting).init(jax.random.key(0), x)
    print("ToLinen collections:", sorted(linen_counting))
    print("after: 'counter' ->", lookup(nnx.variable_type_from_name, "counter"), end="; ")
    print("Count ->", lookup(nnx.variable_name_from_type, Count))

    print("== Migration table ==")
    linen_update = LinenMLP().apply(
        linen_vars, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(1)}
    )
    for concept, linen_side, nnx_side in migration_rows(linen_vars, linen_update, MLP(nnx.Rngs(0))):
        print(f"{concept} | {linen_side} | {nnx_side}")


if __name__ == "__main__":
    main()
