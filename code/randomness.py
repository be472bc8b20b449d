"""Randomness as state: the complete program behind docs/randomness.md.

Where PyTorch, JAX, Flax Linen and Flax NNX keep the state of their random numbers, proven by running
them: PyTorch's global generator, JAX's keys, Linen's ``rngs`` and ``make_rng``, NNX's ``Rngs`` streams
and the ``RngKey``/``RngCount`` variables in a model's state. A small network with two Dropout layers is
trained twice from the same seed in each framework (bit-identical masks and losses), then with its two
Dropout layers called in the other order (PyTorch's masks change; Linen's and NNX's do not, as long as
Linen's layers are named explicitly). Then ensembles under ``vmap`` and layer stacks under ``scan``: a key
the function closes over, or one that is broadcast, gives every member, or every layer, the same mask; a
split key does not; and under ``nnx.scan`` a broadcast stream is dropped or carried depending on its
graph modes.

Run it with ``python code/randomness.py``; tests/test_randomness.py checks what it prints. The functions
are importable: ``from randomness import torch_run`` with code/ on ``sys.path``.
"""

import inspect
import io

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import linen as nn
from flax import nnx
from jax.experimental import random as jax_experimental_random

IN_FEATURES, HIDDEN, NUM_CLASSES, NUM_EXAMPLES = 4, 8, 2, 16
RATE, LEARNING_RATE, NUM_STEPS = 0.5, 0.1, 3
MEMBERS, LAYERS = 4, 3


def make_data(seed=0):
    """Seeded data as NumPy arrays, the same batch for the three frameworks."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_EXAMPLES, IN_FEATURES)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=NUM_EXAMPLES)
    return x, y


def pattern(mask) -> str:
    """A mask as a string of 1 (kept) and 0 (dropped)."""
    return "".join("1" if kept else "0" for kept in np.asarray(mask).ravel())


def show_masks(label, masks):
    """One line per member or layer."""
    for index, mask in enumerate(np.asarray(masks)):
        print(f"  {label} {index}: {pattern(mask)}")


def all_equal(masks) -> bool:
    masks = np.asarray(masks)
    return all(np.array_equal(mask, masks[0]) for mask in masks)


def all_distinct(rows) -> bool:
    """No two rows (masks, kernels, key data) are equal."""
    rows = [np.asarray(row).tobytes() for row in np.asarray(rows)]
    return len(set(rows)) == len(rows)


def same_key(a, b) -> bool:
    return bool(np.array_equal(jax.random.key_data(a), jax.random.key_data(b)))


def error_of(call) -> str:
    """What a call that must fail raises: its class and the first line of its message."""
    try:
        call()
    except Exception as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    raise AssertionError("the call raised nothing")


# -- PyTorch's global generator ------------------------------------------------------------------


def torch_generator():
    print("== PyTorch's global generator")
    rng = np.random.default_rng(0)
    print("NumPy, explicit Generator:", type(rng).__name__, f"{rng.random():.6f}")
    np.random.seed(0)
    print("NumPy, global generator:  ", f"{np.random.random():.6f}")

    torch.manual_seed(1234)
    state = torch.get_rng_state()
    print("get_rng_state():", state.dtype, tuple(state.shape))
    print("its first 8 bytes, as an integer:", int.from_bytes(bytes(state[:8].tolist()), "little"))
    print("torch.initial_seed():", torch.initial_seed())
    torch.rand(1)
    after = torch.get_rng_state()
    print("after one torch.rand(1): state changed:", not torch.equal(state, after))
    print("  first 8 bytes still:", int.from_bytes(bytes(after[:8].tolist()), "little"))
    note = next(line.strip() for line in inspect.getdoc(torch.get_rng_state).splitlines() if "note::" in line)
    print("get_rng_state's docstring:", note)
    print("torch.cuda.get_rng_state_all exists:", callable(torch.cuda.get_rng_state_all))

    dropout = torch.nn.Dropout(RATE)  # a fresh module is in training mode
    ones = torch.ones(2, HIDDEN)
    torch.manual_seed(0)
    first = dropout(ones) != 0
    second = dropout(ones) != 0
    torch.manual_seed(0)
    again = dropout(ones) != 0
    torch.manual_seed(0)
    torch.rand(1)  # one draw anywhere else, before the Dropout
    shifted = dropout(ones) != 0
    print("Dropout, two calls: different masks:", not torch.equal(first, second))
    print("Dropout, reseeded: the first mask again:", torch.equal(first, again))
    print("Dropout after one torch.rand(1): mask changed:", not torch.equal(first, shifted))
    print("Dropout's state_dict:", dict(dropout.state_dict()))

    generator = torch.Generator().manual_seed(0)
    before = torch.get_rng_state()
    torch.randn(3, generator=generator)
    print("randn(generator=g) leaves the global state alone:", torch.equal(before, torch.get_rng_state()))
    print(
        "nn.Dropout has a generator argument:", "generator" in inspect.signature(torch.nn.Dropout).parameters
    )
    signature = inspect.signature(torch.nn.functional.dropout)
    print("F.dropout has a generator argument:", "generator" in signature.parameters)


# -- JAX keys ------------------------------------------------------------------------------------


def jax_keys():
    print("== JAX keys")
    key = jax.random.key(0)
    legacy = jax.random.PRNGKey(0)
    print("jax.random.key(0):     ", key.dtype, key.shape)
    print("jax.random.PRNGKey(0): ", legacy.dtype, legacy.shape)
    print("same bits:", bool(np.array_equal(jax.random.key_data(key), legacy)))
    same_numbers = np.array_equal(jax.random.normal(key, (3,)), jax.random.normal(legacy, (3,)))
    print("same numbers:", bool(same_numbers))
    print("legacy key + 1:", legacy + 1)
    print("typed key + 1:", error_of(lambda: key + 1))

    draws = jax.random.normal(key, (3,)), jax.random.normal(key, (3,))
    print("the same key twice, the same numbers:", bool(np.array_equal(*draws)))
    print("the key after drawing is unchanged:", same_key(key, jax.random.key(0)))
    first, second = jax.random.split(key)
    print("split: two new keys, different:", not same_key(first, second))
    per_step = [jax.random.fold_in(key, step) for step in range(3)]
    print(
        "fold_in(key, step) for steps 0-2, all different:",
        all_distinct([jax.random.key_data(k) for k in per_step]),
    )
    print("fold_in(key, 1) again gives step 1's key:", same_key(jax.random.fold_in(key, 1), per_step[1]))
    stateful = jax_experimental_random.stateful_rng(0)
    print("jax.experimental.random.stateful_rng(0): two .key() calls, different keys:",
          not same_key(stateful.key(), stateful.key()))  # fmt: skip


# -- The model, in three frameworks --------------------------------------------------------------
# A hidden tanh layer (never exactly 0, so a 0 after Dropout is Dropout's), then two Dropout layers,
# drop_a and drop_b, on the same hidden values; b_first=True calls drop_b before drop_a.


class TorchNet(torch.nn.Module):
    def __init__(self, b_first=False):
        super().__init__()
        self.dense1 = torch.nn.Linear(IN_FEATURES, HIDDEN)
        self.drop_a = torch.nn.Dropout(RATE)
        self.drop_b = torch.nn.Dropout(RATE)
        self.dense2 = torch.nn.Linear(2 * HIDDEN, NUM_CLASSES)
        self.b_first = b_first

    def forward(self, x):
        h = torch.tanh(self.dense1(x))
        if self.b_first:
            b = self.drop_b(h)
            a = self.drop_a(h)
        else:
            a = self.drop_a(h)
            b = self.drop_b(h)
        logits = self.dense2(torch.cat([a, b], dim=1))
        return logits, torch.stack([a != 0, b != 0])


class LinenNet(nn.Module):
    b_first: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        h = jnp.tanh(nn.Dense(HIDDEN, name="dense1")(x))
        drop_a = nn.Dropout(RATE, deterministic=not train, name="drop_a")
        drop_b = nn.Dropout(RATE, deterministic=not train, name="drop_b")
        if self.b_first:
            b = drop_b(h)
            a = drop_a(h)
        else:
            a = drop_a(h)
            b = drop_b(h)
        logits = nn.Dense(NUM_CLASSES, name="dense2")(jnp.concatenate([a, b], axis=1))
        return logits, jnp.stack([a != 0, b != 0])


class NNXNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, b_first=False):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.drop_a = nnx.Dropout(RATE, rngs=rngs)  # forks its own stream from rngs.dropout
        self.drop_b = nnx.Dropout(RATE, rngs=rngs)
        self.dense2 = nnx.Linear(2 * HIDDEN, NUM_CLASSES, rngs=rngs)
        self.b_first = b_first

    def __call__(self, x):
        h = jnp.tanh(self.dense1(x))
        if self.b_first:
            b = self.drop_b(h)
            a = self.drop_a(h)
        else:
            a = self.drop_a(h)
            b = self.drop_b(h)
        logits = self.dense2(jnp.concatenate([a, b], axis=1))
        return logits, jnp.stack([a != 0, b != 0])


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


# -- Keys inside a model -------------------------------------------------------------------------


class KeyProbe(nn.Module):
    """Asks make_rng for two keys of the 'dropout' stream, as a Dropout layer asks for one."""

    @nn.compact
    def __call__(self):
        return self.make_rng("dropout"), self.make_rng("dropout")


class TwoProbes(nn.Module):
    b_first: bool = False

    @nn.compact
    def __call__(self):
        a, b = KeyProbe(name="a"), KeyProbe(name="b")
        if self.b_first:
            keys_b = b()
            keys_a = a()
        else:
            keys_a = a()
            keys_b = b()
        return keys_a, keys_b


class InlineNet(nn.Module):
    """Two Dropout layers created where they are called, without a name: Linen names them Dropout_0, ..."""

    b_first: bool = False

    @nn.compact
    def __call__(self, h):
        if self.b_first:
            drop_b = nn.Dropout(RATE, deterministic=False)
            b = drop_b(h)
            drop_a = nn.Dropout(RATE, deterministic=False)
            a = drop_a(h)
        else:
            drop_a = nn.Dropout(RATE, deterministic=False)
            a = drop_a(h)
            drop_b = nn.Dropout(RATE, deterministic=False)
            b = drop_b(h)
        return jnp.stack([a != 0, b != 0]), (drop_a.name, drop_b.name)


def keys_in_a_model():
    print("== Keys inside a model")
    torch.manual_seed(0)
    print("PyTorch state_dict keys:", list(TorchNet().state_dict()))

    x, _ = make_data()
    variables = LinenNet().init(jax.random.key(0), x, train=False)
    print("Linen init returns:", list(variables))
    key = jax.random.key(1)
    (a1, a2), (b1, _) = TwoProbes().apply({}, rngs={"dropout": key})
    (a1_late, _), _ = TwoProbes(b_first=True).apply({}, rngs={"dropout": key})
    (a1_again, _), _ = TwoProbes().apply({}, rngs={"dropout": key})
    print("make_rng twice in layer a: different keys:", not same_key(a1, a2))
    print("layers a and b: different keys:", not same_key(a1, b1))
    print("layer a called after b: the same key:", same_key(a1, a1_late))
    print("apply again with the same key: the same key:", same_key(a1, a1_again))
    (p1, _), (pb1, _) = TwoProbes().apply({}, rngs={"params": key})
    print(
        "only a 'params' key: make_rng('dropout') falls back to it:", same_key(a1, p1) and same_key(b1, pb1)
    )
    h = jnp.ones((2, HIDDEN))
    masks, names = InlineNet().apply({}, h, rngs={"dropout": key})
    masks_b_first, names_b_first = InlineNet(b_first=True).apply({}, h, rngs={"dropout": key})
    print("inline Dropouts, unnamed: drop_a, drop_b are", *names)
    print("  drop_b called first: drop_a, drop_b are", *names_b_first)
    print("  drop_b called first: masks identical", bool(np.array_equal(masks, masks_b_first)))
    print("  drop_a called second got drop_b's mask:", bool(np.array_equal(masks_b_first[0], masks[1])))

    rngs = nnx.Rngs(params=0, dropout=1)
    stream = rngs.dropout
    print(
        "rngs.dropout:", type(stream).__name__, "key", stream.key[...].dtype, "count", int(stream.count[...])
    )
    k0, k1 = rngs.dropout(), rngs.dropout()
    print("after two rngs.dropout() calls, count:", int(stream.count[...]))
    print("they were fold_in(key(1), 0) and fold_in(key(1), 1):",
          same_key(k0, jax.random.fold_in(jax.random.key(1), 0)),
          same_key(k1, jax.random.fold_in(jax.random.key(1), 1)))  # fmt: skip

    rngs = nnx.Rngs(params=0, dropout=1)
    model = NNXNet(rngs)
    print("rngs.dropout count after building NNXNet:", int(rngs.dropout.count[...]))
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.RngState)):
        print(f"  {'/'.join(map(str, path)):18} {type(variable).__name__:9} {variable[...].dtype}")
    root = jax.random.key(1)
    print(
        "drop_a's key is fold_in(key(1), 0):",
        same_key(model.drop_a.rngs.key[...], jax.random.fold_in(root, 0)),
    )
    print(
        "drop_b's key is fold_in(key(1), 1):",
        same_key(model.drop_b.rngs.key[...], jax.random.fold_in(root, 1)),
    )
    model(x)
    model(x)
    counts = nnx.to_pure_dict(nnx.state(model, nnx.RngCount))
    print("counts after two calls:", {name: int(layer["rngs"]["count"]) for name, layer in counts.items()})


# -- Reproducibility -----------------------------------------------------------------------------


def torch_run(seed, b_first=False):
    """NUM_STEPS SGD steps; returns the masks of every step and the losses."""
    x, y = (torch.from_numpy(array) for array in make_data())
    torch.manual_seed(seed)  # seeds the initial weights and every Dropout mask after them
    model = TorchNet(b_first)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    masks, losses = [], []
    for _ in range(NUM_STEPS):
        logits, step_masks = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        masks.append(step_masks.numpy())
        losses.append(loss.item())
    return np.stack(masks), losses


tx = optax.sgd(LEARNING_RATE)


@jax.jit(static_argnames="b_first")
def linen_train_step(params, opt_state, x, y, dropout_key, step, b_first):
    key = jax.random.fold_in(dropout_key, step)  # a new key for every step

    def loss_fn(params):
        logits, masks = LinenNet(b_first).apply({"params": params}, x, train=True, rngs={"dropout": key})
        return cross_entropy(logits, y), masks

    (loss, masks), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss, masks


def linen_run(seed, b_first=False):
    x, y = make_data()
    init_key, dropout_key = jax.random.split(jax.random.key(seed))
    params = LinenNet(b_first).init(init_key, x, train=False)["params"]
    opt_state = tx.init(params)
    masks, losses = [], []
    for step in range(NUM_STEPS):
        params, opt_state, loss, step_masks = linen_train_step(
            params, opt_state, x, y, dropout_key, step, b_first
        )
        masks.append(np.asarray(step_masks))
        losses.append(float(loss))
    return np.stack(masks), losses


@nnx.jit
def nnx_train_step(model, optimizer, x, y):
    def loss_fn(model):
        logits, masks = model(x)
        return cross_entropy(logits, y), masks

    (loss, masks), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return loss, masks


def nnx_train(seed, b_first=False):
    """NUM_STEPS steps; returns the trained model, the masks of every step and the losses."""
    x, y = make_data()
    model = NNXNet(nnx.Rngs(params=seed, dropout=seed + 1), b_first)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)  # the same tx each run: nnx.jit compiles once
    masks, losses = [], []
    for _ in range(NUM_STEPS):
        loss, step_masks = nnx_train_step(model, optimizer, x, y)
        masks.append(np.asarray(step_masks))
        losses.append(float(loss))
    return model, np.stack(masks), losses


def nnx_run(seed, b_first=False):
    _, masks, losses = nnx_train(seed, b_first)
    return masks, losses


def compare(name, run):
    """Two runs from seed 0, and one with drop_b called first; prints what differs."""
    masks, losses = run(0)
    masks_again, losses_again = run(0)
    masks_b_first, losses_b_first = run(0, b_first=True)
    print(f"{name} losses:", " ".join(f"{loss:.4f}" for loss in losses))
    print(f"{name} same seed twice: masks identical {np.array_equal(masks, masks_again)},",
          f"losses identical {losses == losses_again}")  # fmt: skip
    print(f"{name} drop_b called first: masks identical {np.array_equal(masks, masks_b_first)},",
          f"losses identical {losses == losses_b_first}")  # fmt: skip
    # masks[step, layer]: layer 0 is drop_a, layer 1 is drop_b
    a_got_b = np.array_equal(masks_b_first[:, 0], masks[:, 1])
    print(f"{name} drop_a called second got drop_b's masks: {a_got_b}")


def reproducibility():
    print("== Reproducibility")
    compare("PyTorch", torch_run)
    compare("Linen", linen_run)
    compare("NNX", nnx_run)
    for b_first in (False, True):
        model, _, _ = nnx_train(0, b_first)
        counts = nnx.to_pure_dict(nnx.state(model, nnx.RngCount))
        counts = {name: int(layer["rngs"]["count"]) for name, layer in counts.items()}
        print(f"NNX counts after 3 steps, b_first={b_first}:", counts)


# -- vmap: an ensemble ---------------------------------------------------------------------------


def jax_member(w, key, x):
    """One member of an ensemble of pure functions: dropout on its input, then a scale."""
    keep = jax.random.bernoulli(key, 1 - RATE, x.shape)
    return jnp.where(keep, x / (1 - RATE), 0.0) * w


def torch_member(w, x):
    return torch.nn.functional.dropout(x, RATE, training=True) * w


class LinenMember(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = jnp.tanh(nn.Dense(HIDDEN)(x))
        return nn.Dropout(RATE, deterministic=False)(h)


def linen_ensemble(split_rngs):
    return nn.vmap(
        LinenMember,
        variable_axes={"params": 0},  # one set of parameters per member
        split_rngs=split_rngs,
        in_axes=None,  # every member sees the same input
        axis_size=MEMBERS,
    )()


class NNXMember(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.dropout = nnx.Dropout(RATE, rngs=rngs)

    def __call__(self, x):
        return self.dropout(jnp.tanh(self.dense(x)))


@nnx.split_rngs(splits=MEMBERS)  # every stream: params and dropout
@nnx.vmap(in_axes=0, out_axes=0)
def make_ensemble(rngs):
    return NNXMember(rngs)


@nnx.vmap(in_axes=(0, None))
def ensemble_forward(member, x):
    return member(x)


per_member = nnx.StateAxes({nnx.Param: 0, ...: None})  # parameters stacked, the rest broadcast


@nnx.split_rngs(splits=MEMBERS, only="params")  # the dropout stream is left whole
@nnx.vmap(in_axes=(nnx.StateAxes({"params": 0, ...: None}),), out_axes=per_member)
def make_shared_ensemble(rngs):
    return NNXMember(rngs)


@nnx.vmap(in_axes=(per_member, None))
def shared_forward(member, x):
    return member(x)


def ensembles():
    print("== vmap: an ensemble")
    key = jax.random.key(0)
    w = jnp.arange(1.0, MEMBERS + 1)[:, None] * jnp.ones((MEMBERS, HIDDEN))
    ones = jnp.ones(HIDDEN)
    broadcast = jax.vmap(jax_member, in_axes=(0, None, None))(w, key, ones)
    print("jax.vmap, one key for all (in_axes None): masks identical:", all_equal(broadcast != 0))
    show_masks("member", broadcast != 0)
    closed_over = jax.vmap(lambda w: jax_member(w, key, ones))(w)  # the default in_axes=0, for w
    print("jax.vmap, key closed over (default in_axes): masks identical:", all_equal(closed_over != 0))
    show_masks("member", closed_over != 0)
    split = jax.vmap(jax_member, in_axes=(0, 0, None))(w, jax.random.split(key, MEMBERS), ones)
    print("jax.vmap, split keys: masks all different:", all_distinct(split != 0))
    show_masks("member", split != 0)
    mapped = jax.vmap(jax_member, in_axes=(0, 0, None))
    print("jax.vmap, one key mapped over axis 0:", error_of(lambda: mapped(w, key, ones)))

    w_t = torch.arange(1.0, MEMBERS + 1)[:, None].expand(MEMBERS, HIDDEN)
    ones_t = torch.ones(HIDDEN)
    default = torch.func.vmap(torch_member, in_dims=(0, None))
    print("torch.func.vmap, default randomness:", error_of(lambda: default(w_t, ones_t)))
    torch.manual_seed(0)
    same = torch.func.vmap(torch_member, in_dims=(0, None), randomness="same")(w_t, ones_t)
    different = torch.func.vmap(torch_member, in_dims=(0, None), randomness="different")(w_t, ones_t)
    print("torch.func.vmap randomness='same': masks identical:", all_equal((same != 0).numpy()))
    print(
        "torch.func.vmap randomness='different': masks all different:", all_distinct((different != 0).numpy())
    )

    x = jnp.ones(IN_FEATURES)
    dropout_key = jax.random.key(1)
    for split_rngs in ({"params": True, "dropout": False}, {"params": True, "dropout": True}):
        ensemble = linen_ensemble(split_rngs)
        variables = ensemble.init(jax.random.key(0), x)
        out = ensemble.apply(variables, x, rngs={"dropout": dropout_key})
        kernels = variables["params"]["Dense_0"]["kernel"]
        print(f"nn.vmap split_rngs={split_rngs}:")
        print("  kernels all different", all_distinct(kernels))
        print("  masks identical", all_equal(out != 0))
        show_masks("member", out != 0)
    ensemble = linen_ensemble({"params": True})
    variables = ensemble.init(jax.random.key(0), x)
    print(
        "nn.vmap split_rngs={'params': True}, only a dropout key:",
        error_of(lambda: ensemble.apply(variables, x, rngs={"dropout": dropout_key})),
    )
    params_key = jax.random.key(5)
    out = {
        seed: ensemble.apply(variables, x, rngs={"params": params_key, "dropout": jax.random.key(seed)})
        for seed in (1, 99)
    }
    params_only = ensemble.apply(variables, x, rngs={"params": params_key})
    print("  with a params key too: no error, masks all different:", all_distinct(out[1] != 0))
    print("  dropout key 1 or 99: the same masks:", bool(np.array_equal(out[1], out[99])))
    print("  the params key alone: the same masks:", bool(np.array_equal(out[1], params_only)))

    unsplit = nnx.Rngs(params=0, dropout=1)
    print(
        "nnx.vmap, an unsplit Rngs on the default in_axes=0:", error_of(lambda: nnx.vmap(NNXMember)(unsplit))
    )
    inputs = jnp.ones((MEMBERS, IN_FEATURES))
    model = NNXMember(nnx.Rngs(params=0, dropout=1))
    print("nnx.vmap, a model closed over:", error_of(lambda: nnx.vmap(lambda x: model(x))(inputs)))
    model = NNXMember(nnx.Rngs(params=0, dropout=1))
    out = nnx.vmap(lambda model, x: model(x), in_axes=(None, 0))(model, inputs)
    print("nnx.vmap, in_axes=None on the model: masks identical:", all_equal(out != 0),
          "count:", int(model.dropout.rngs.count[...]))  # fmt: skip
    show_masks("member", out != 0)
    ensemble = make_ensemble(nnx.Rngs(params=0, dropout=1))
    out = ensemble_forward(ensemble, x)
    print("nnx split_rngs(splits=4): dropout key shape", ensemble.dropout.rngs.key.shape,
          "masks all different:", all_distinct(out != 0))  # fmt: skip
    show_masks("member", out != 0)
    shared = make_shared_ensemble(nnx.Rngs(params=0, dropout=1))
    out = shared_forward(shared, x)
    print("nnx split_rngs(only='params'): dropout key shape", shared.dropout.rngs.key.shape,
          "masks identical:", all_equal(out != 0),
          "kernels all different:", all_distinct(shared.dense.kernel[...]))  # fmt: skip
    show_masks("member", out != 0)
    print("  the shared stream's count after one call:", int(shared.dropout.rngs.count[...]))


# -- scan: a stack of layers ---------------------------------------------------------------------


class LinenLayer(nn.Module):
    @nn.compact
    def __call__(self, h, _):
        h = nn.Dropout(RATE, deterministic=False)(jnp.tanh(nn.Dense(HIDDEN)(h)))
        return h, h != 0  # carry, and the layer's mask as the scan's output


def linen_stack(split_rngs):
    return nn.scan(LinenLayer, variable_axes={"params": 0}, split_rngs=split_rngs, length=LAYERS)()


class NNXLayer(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(HIDDEN, HIDDEN, rngs=rngs)
        self.dropout = nnx.Dropout(RATE, rngs=rngs)

    def __call__(self, h):
        h = self.dropout(jnp.tanh(self.dense(h)))
        return h, h != 0


@nnx.split_rngs(splits=LAYERS)
@nnx.vmap(in_axes=0, out_axes=0)
def make_stack(rngs):
    return NNXLayer(rngs)


@nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
def run_stack(h, layer):
    return layer(h)


@nnx.split_rngs(splits=LAYERS, only="params")
@nnx.vmap(in_axes=(nnx.StateAxes({"params": 0, ...: None}),), out_axes=per_member)
def make_shared_stack(rngs):
    return NNXLayer(rngs)


@nnx.scan(in_axes=(nnx.Carry, per_member), out_axes=(nnx.Carry, 0))
def run_shared_stack(h, layer):
    return layer(h)


def run_shared_stack_with_prefix(stack, h, graph, graph_updates=True):
    """The same scan with other modes: graph=False (tree mode) or graph_updates=False. Neither takes a
    StateAxes; nnx.prefix gives the same axes."""
    axes = nnx.prefix(stack, {nnx.Param: 0, ...: None}, graph=graph)
    run = nnx.scan(
        lambda h, layer: layer(h),
        in_axes=(nnx.Carry, axes),
        out_axes=(nnx.Carry, 0),
        graph=graph,
        graph_updates=graph_updates,
    )
    return run(h, stack)


def layer_mask(h, key):
    """A scan body: one layer's dropout mask from its key (the carry passes through)."""
    return h, jax.random.bernoulli(key, 1 - RATE, h.shape)


def layer_stacks():
    print("== scan: a stack of layers")
    h0 = jnp.ones(HIDDEN)
    key = jax.random.key(0)
    _, closed_over = jax.lax.scan(lambda h, _: layer_mask(h, key), h0, None, length=LAYERS)
    print("jax.lax.scan, key closed over: masks identical:", all_equal(closed_over))
    show_masks("layer", closed_over)
    _, scanned = jax.lax.scan(layer_mask, h0, jax.random.split(key, LAYERS))
    print("jax.lax.scan, split keys as xs: masks all different:", all_distinct(scanned))
    show_masks("layer", scanned)
    for split_rngs in ({"params": True, "dropout": False}, {"params": True, "dropout": True}):
        stack = linen_stack(split_rngs)
        variables = stack.init(jax.random.key(0), h0, None)
        _, masks = stack.apply(variables, h0, None, rngs={"dropout": jax.random.key(1)})
        print(f"nn.scan split_rngs={split_rngs}:")
        print("  masks identical", all_equal(masks))
        show_masks("layer", masks)

    stack = make_stack(nnx.Rngs(params=0, dropout=1))
    _, masks = run_stack(h0, stack)
    print("nnx split_rngs(splits=3): dropout key shape", stack.dropout.rngs.key.shape,
          "masks all different:", all_distinct(masks))  # fmt: skip
    show_masks("layer", masks)
    _, masks_next = run_stack(h0, stack)
    print("  next call, new masks:", not np.array_equal(masks, masks_next),
          "counts:", stack.dropout.rngs.count[...].tolist())  # fmt: skip

    shared = make_shared_stack(nnx.Rngs(params=0, dropout=1))
    _, masks = run_shared_stack(h0, shared)
    print("nnx shared stream under nnx.scan, default modes: masks identical:", all_equal(masks),
          "count:", int(shared.dropout.rngs.count[...]))  # fmt: skip
    show_masks("layer", masks)
    _, masks_next = run_shared_stack(h0, shared)
    print("  next call, the same masks again:", bool(np.array_equal(masks, masks_next)),
          "count:", int(shared.dropout.rngs.count[...]))  # fmt: skip

    for graph, graph_updates in ((False, True), (True, False)):
        shared = make_shared_stack(nnx.Rngs(params=0, dropout=1))
        _, masks = run_shared_stack_with_prefix(shared, h0, graph, graph_updates)
        print(f"nnx shared stream, graph={graph} graph_updates={graph_updates}:",
              "masks all different:", all_distinct(masks),
              "count:", int(shared.dropout.rngs.count[...]))  # fmt: skip
        show_masks("layer", masks)


# -- Saving random state -------------------------------------------------------------------------


def saving():
    print("== Saving random state")
    x, _ = make_data()
    x_t = torch.from_numpy(x)
    torch.manual_seed(0)
    torch_model = TorchNet()
    saved = torch.get_rng_state()  # the CPU generator's state
    _, first = torch_model(x_t)
    torch.set_rng_state(saved)
    _, again = torch_model(x_t)
    print("PyTorch, after set_rng_state (CPU generator): the same masks:", torch.equal(first, again))

    # What linen_run(0) would save at step 2: the dropout key's raw data and the step, as NumPy arrays.
    init_key, dropout_key = jax.random.split(jax.random.key(0))
    file = io.BytesIO()
    np.savez(file, dropout_key=np.asarray(jax.random.key_data(dropout_key)), step=2)
    file.seek(0)
    saved = np.load(file)
    restored_key = jax.random.wrap_key_data(saved["dropout_key"])
    step = int(saved["step"])
    variables = LinenNet().init(init_key, x, train=False)

    def linen_masks(key, step):
        rngs = {"dropout": jax.random.fold_in(key, step)}
        return LinenNet().apply(variables, x, train=True, rngs=rngs)[1]

    run_masks, _ = linen_run(0)
    print("Linen, key rebuilt from the saved key data and step 2: the run's masks at step 2:",
          bool(np.array_equal(linen_masks(restored_key, step), run_masks[step])))  # fmt: skip
    print("  the rebuilt key with step 1: other masks:",
          not np.array_equal(linen_masks(restored_key, 1), run_masks[step]))  # fmt: skip

    model = NNXNet(nnx.Rngs(params=0, dropout=1))
    saved = nnx.clone(nnx.state(model, nnx.RngState))
    _, first = model(x)
    nnx.update(model, saved)
    _, again = model(x)
    print(
        "NNX, after nnx.update with the saved RngState: the same masks:", bool(np.array_equal(first, again))
    )
    _, later = model(x)
    print("  the next call, not restored: other masks:", not np.array_equal(first, later))
    rng_paths = {path for path, _ in nnx.to_flat_state(nnx.state(model, nnx.RngState))}
    all_paths = {path for path, _ in nnx.to_flat_state(nnx.state(model))}
    print("NNX, nnx.state(model) holds the RngState too:", rng_paths <= all_paths)


# -- Exercise ------------------------------------------------------------------------------------


def exercise():
    print("== Exercise: a key per member with fold_in")
    key = jax.random.key(7)
    w = jnp.arange(1.0, MEMBERS + 1)[:, None] * jnp.ones((MEMBERS, HIDDEN))
    ones = jnp.ones(HIDDEN)

    def member_with_index(w, index, x):
        return jax_member(w, jax.random.fold_in(key, index), x)

    out = jax.vmap(member_with_index, in_axes=(0, 0, None))(w, jnp.arange(MEMBERS), ones)
    alone = jax_member(w[2], jax.random.fold_in(key, 2), ones)
    print("masks all different:", all_distinct(out != 0))
    print("member 2 equals fold_in(key, 2) outside vmap:", bool(np.array_equal(out[2], alone)))
    show_masks("member", out != 0)


def main():
    torch_generator()
    jax_keys()
    keys_in_a_model()
    reproducibility()
    ensembles()
    layer_stacks()
    saving()
    exercise()


if __name__ == "__main__":
    main()
