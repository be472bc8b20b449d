"""Freezing: the complete program behind docs/freezing.md.

A small network, a body (Linear 4->32, BatchNorm, ReLU, Linear 32->16, ReLU) and a head (Linear 16->C), is
pretrained in PyTorch on one task. Its body then gets a new head for a second task, and the head alone is
trained, with the body frozen, in PyTorch (``requires_grad_(False)``), Flax Linen (``optax.partition`` with
``optax.set_to_zero``, labels from the parameter tree) and Flax NNX (``nnx.Optimizer(..., wrt=filter)`` and
``nnx.DiffState``), all three from the same weights. The script checks that the frozen arrays stay
bit-identical, that the three heads agree, what each optimizer keeps for the frozen part and how many bytes
that is, and shows two ways to get it wrong: weight decay that reaches the frozen leaves, and BatchNorm
statistics that keep moving in training mode.

Run it with ``python code/freezing.py``; tests/test_freezing.py checks what it prints.
The functions are importable: ``from freezing import pretrain`` with code/ on ``sys.path``.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import linen as nn
from flax import nnx, traverse_util
from flax.training import train_state

torch.set_num_threads(1)  # one summation order on every run, so the printed differences repeat exactly

IN_FEATURES, HIDDEN, FEATURES = 4, 32, 16
PRETRAIN_CLASSES, NUM_CLASSES = 2, 3
LEARNING_RATE, PRETRAIN_STEPS, NUM_STEPS = 0.01, 100, 100
WEIGHT_DECAY = 0.1
BATCHNORM_STEPS = 10
TOLERANCE = 1e-5  # the largest difference allowed between two frameworks' trained weights


def make_data(seed=0):
    """Pretraining data (task A, 2 classes) and fine-tuning data (task B, 3 classes), as NumPy arrays."""
    rng = np.random.default_rng(seed)
    x_pre = rng.normal(size=(512, IN_FEATURES)).astype(np.float32)
    y_pre = (x_pre[:, 0] * x_pre[:, 1] + x_pre[:, 2] > 0).astype(np.int64)
    x = rng.normal(size=(256, IN_FEATURES)).astype(np.float32)
    y = np.argmax(np.stack([x[:, 0] * x[:, 1], x[:, 2], -x[:, 3]], axis=1), axis=1).astype(np.int64)
    return x_pre, y_pre, x, y


def changed(before, after):
    """The largest absolute change between two arrays."""
    return float(np.abs(np.asarray(after) - np.asarray(before)).max())


def all_equal(before, after):
    """Whether two pytrees of arrays are bit-identical, leaf by leaf."""
    pairs = zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
    return all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in pairs)


def tree_bytes(tree):
    return sum(int(leaf.nbytes) for leaf in jax.tree.leaves(tree))


# -- PyTorch: the pretrained body --------------------------------------------------------------------


class TorchBody(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense1 = torch.nn.Linear(IN_FEATURES, HIDDEN)
        self.norm = torch.nn.BatchNorm1d(HIDDEN)  # momentum 0.1 in PyTorch is Flax's 0.9
        self.dense2 = torch.nn.Linear(HIDDEN, FEATURES)

    def forward(self, x):
        return torch.relu(self.dense2(torch.relu(self.norm(self.dense1(x)))))


class TorchNet(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.body = TorchBody()
        self.head = torch.nn.Linear(FEATURES, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def torch_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def pretrain():
    """Train the whole network on task A; return it (in eval mode) and its losses."""
    x_pre, y_pre, _, _ = make_data()
    x_pre, y_pre = torch.from_numpy(x_pre), torch.from_numpy(y_pre)
    torch.manual_seed(0)
    model = TorchNet(PRETRAIN_CLASSES)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    model.train()
    losses = [torch_step(model, optimizer, x_pre, y_pre) for _ in range(PRETRAIN_STEPS)]
    model.eval()
    return model, losses


def starting_weights(pretrained):
    """The pretrained body and a new, seeded head for task B: one NumPy dict, the start of every run."""
    torch.manual_seed(1)
    model = TorchNet(NUM_CLASSES)
    model.body.load_state_dict(pretrained.body.state_dict())
    return {name: tensor.numpy().copy() for name, tensor in model.state_dict().items()}


def torch_model(weights):
    model = TorchNet(NUM_CLASSES)
    model.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in weights.items()})
    return model


def torch_fine_tune(weights, make_optimizer, num_steps=NUM_STEPS, body_mode="eval"):
    """Freeze the body with requires_grad_(False), train the head; return model, optimizer, losses."""
    _, _, x, y = make_data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = torch_model(weights)
    model.body.requires_grad_(False)
    model.train()
    if body_mode == "eval":
        model.body.eval()  # running averages, and no more updates to them
    optimizer = make_optimizer(model.parameters())  # every parameter, frozen ones included
    losses = [torch_step(model, optimizer, x, y) for _ in range(num_steps)]
    return model, optimizer, losses


def torch_body(model):
    return {name: tensor.numpy().copy() for name, tensor in model.body.state_dict().items()}


def torch_state_bytes(optimizer):
    return sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values())


def torch_freeze_midway(set_to_none, make_optimizer, steps=5):
    """Train everything for a few steps, freeze the body, go on; return (the body's largest change since the
    freezing, the body's .grad, how many body parameters the optimizer has state for)."""
    _, _, x, y = make_data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(1)
    model = TorchNet(NUM_CLASSES)
    model.eval()  # no BatchNorm updates: only the optimizer can change the body here
    optimizer = make_optimizer(model.parameters())

    def step():
        optimizer.zero_grad(set_to_none=set_to_none)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(steps):
        step()
    model.body.requires_grad_(False)
    frozen_at = torch_body(model)
    for _ in range(steps):
        step()
    body = torch_body(model)
    grad = model.body.dense1.weight.grad
    kept = sum(p in optimizer.state for p in model.body.parameters())
    return max(changed(frozen_at[k], body[k]) for k in body), grad, kept


# -- Flax: the same weights ---------------------------------------------------------------------------


def to_flax(weights):
    """PyTorch's arrays as Flax's trees: kernel = weight.T; BatchNorm's weight and bias are scale and bias."""

    def dense(name):
        return {"kernel": weights[f"{name}.weight"].T, "bias": weights[f"{name}.bias"]}

    norm = {"scale": weights["body.norm.weight"], "bias": weights["body.norm.bias"]}
    params = {"body": {"dense1": dense("body.dense1"), "norm": norm, "dense2": dense("body.dense2")}}
    params["head"] = dense("head")
    stats = {
        "body": {"norm": {"mean": weights["body.norm.running_mean"], "var": weights["body.norm.running_var"]}}
    }
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, stats)


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


# -- Flax Linen: optax.partition with labels from the parameter tree ----------------------------------


class LinenBody(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(HIDDEN, name="dense1")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="norm")(x)
        return nn.relu(nn.Dense(FEATURES, name="dense2")(nn.relu(x)))


class LinenNet(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dense(self.num_classes, name="head")(LinenBody(name="body")(x, train))


class TrainState(train_state.TrainState):
    batch_stats: Any


def freeze_labels(params, trained=("head",)):
    """'trained' for the leaves under the top-level names in ``trained``, 'frozen' for all others."""
    return traverse_util.path_aware_map(lambda path, _: "trained" if path[0] in trained else "frozen", params)


def partition_tx(params, inner):
    return optax.partition({"trained": inner, "frozen": optax.set_to_zero()}, freeze_labels(params))


def freeze_mask(params):
    """True where frozen: the mask optax.freeze and optax.selective_transform take."""
    return jax.tree.map(lambda label: label == "frozen", freeze_labels(params))


def make_linen_step(train):
    @jax.jit
    def linen_step(state, x, y):
        def loss_fn(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            if not train:  # the body runs on its running averages and writes nothing
                return cross_entropy(state.apply_fn(variables, x, train=False), y), state.batch_stats
            logits, updates = state.apply_fn(variables, x, train=True, mutable=["batch_stats"])
            return cross_entropy(logits, y), updates["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads).replace(batch_stats=stats), loss

    return linen_step


def linen_fine_tune(weights, make_tx, num_steps=NUM_STEPS, train=False):
    """Train the head in Linen with the transformation ``make_tx(params)``; return state and losses."""
    _, _, x, y = make_data()
    params, stats = to_flax(weights)
    state = TrainState.create(
        apply_fn=LinenNet(NUM_CLASSES).apply, params=params, tx=make_tx(params), batch_stats=stats
    )
    step = make_linen_step(train)
    losses = []
    for _ in range(num_steps):
        state, loss = step(state, x, y)
        losses.append(float(loss))
    return state, losses


# -- Flax NNX: nnx.Optimizer(..., wrt=filter) and nnx.DiffState ---------------------------------------


class NNXBody(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.norm = nnx.BatchNorm(HIDDEN, momentum=0.9, rngs=rngs)
        self.dense2 = nnx.Linear(HIDDEN, FEATURES, rngs=rngs)

    def __call__(self, x):
        return nnx.relu(self.dense2(nnx.relu(self.norm(self.dense1(x)))))


class NNXNet(nnx.Module):
    def __init__(self, num_classes, rngs: nnx.Rngs):
        self.body = NNXBody(rngs)
        self.head = nnx.Linear(FEATURES, num_classes, rngs=rngs)

    def __call__(self, x):
        return self.head(self.body(x))


TRAINABLE = nnx.All(nnx.Param, nnx.PathContains("head"))  # the head's parameters, nothing else


def nnx_model(weights):
    model = NNXNet(NUM_CLASSES, nnx.Rngs(0))
    params, stats = to_flax(weights)
    state = nnx.state(model)
    body = params["body"] | {"norm": params["body"]["norm"] | stats["body"]["norm"]}
    nnx.replace_by_pure_dict(state, {"body": body, "head": params["head"]})
    nnx.update(model, state)
    return model


def make_nnx_step(diff_filter):
    @nnx.jit
    def nnx_step(model, optimizer, x, y):
        def loss_fn(model):
            return cross_entropy(model(x), y)

        loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, diff_filter))(model)
        optimizer.update(model, grads)
        return loss

    return nnx_step


def nnx_fine_tune(weights, tx, wrt=TRAINABLE, diff_filter=TRAINABLE, num_steps=NUM_STEPS, body_mode="eval"):
    """Train the head in NNX; return model, optimizer and losses."""
    _, _, x, y = make_data()
    model = nnx_model(weights)
    optimizer = nnx.Optimizer(model, tx, wrt=wrt)
    model.train()
    if body_mode == "eval":
        model.body.eval()
    step = make_nnx_step(diff_filter)
    losses = [float(step(model, optimizer, x, y)) for _ in range(num_steps)]
    return model, optimizer, losses


def nnx_body(model):
    return nnx.to_pure_dict(nnx.clone(nnx.state(model.body)))


# -- The exercise: unfreeze the body's last layer too ----------------------------------------------

SECOND_STAGE = nnx.All(nnx.Param, nnx.Any(nnx.PathContains("head"), nnx.PathContains("dense2")))


def second_stage(weights, num_steps=20):
    """Train body.dense2 and head, body.dense1 and body.norm frozen; return the model and the optimizer."""
    _, _, x, y = make_data()
    model = nnx_model(weights)
    optimizer = nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=SECOND_STAGE)
    model.eval()  # the whole body, dense2 included, runs on its running averages
    step = make_nnx_step(SECOND_STAGE)
    for _ in range(num_steps):
        step(model, optimizer, x, y)
    return model, optimizer


# -- Main -------------------------------------------------------------------------------------------


def adam_torch(params):
    return torch.optim.Adam(params, lr=LEARNING_RATE)


def adamw_torch(params):
    return torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)


def sgd_torch(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def main():
    print("== Pretraining (PyTorch, task A) ==")
    pretrained, pre_losses = pretrain()
    x_pre, y_pre, x, y = make_data()
    print("task A classes:", np.bincount(y_pre), "| task B classes:", np.bincount(y))
    accuracy = (pretrained(torch.from_numpy(x_pre)).argmax(1).numpy() == y_pre).mean()
    print(f"pretraining loss: first {pre_losses[0]:.4f}, last {pre_losses[-1]:.4f}, accuracy {accuracy:.3f}")
    weights = starting_weights(pretrained)
    from_pretraining = all(
        np.array_equal(weights[f"body.{k}"], v.numpy()) for k, v in pretrained.body.state_dict().items()
    )
    print("new head:", weights["head.weight"].shape, "| body from pretraining:", from_pretraining)
    params0, stats0 = to_flax(weights)
    start_body = {k.removeprefix("body."): v for k, v in weights.items() if k.startswith("body.")}
    nnx_start = nnx_body(nnx_model(weights))

    print(f"== Fine-tuning: body frozen, {NUM_STEPS} Adam steps on the head ==")
    t_model, t_opt, t_losses = torch_fine_tune(weights, adam_torch)
    l_state, l_losses = linen_fine_tune(weights, lambda p: partition_tx(p, optax.adam(LEARNING_RATE)))
    n_model, n_opt, n_losses = nnx_fine_tune(weights, optax.adam(LEARNING_RATE))
    frozen = {
        "pytorch": all_equal(start_body, torch_body(t_model)),
        "linen": all_equal((params0["body"], stats0), (l_state.params["body"], l_state.batch_stats)),
        "nnx": all_equal(nnx_start, nnx_body(n_model)),
    }
    heads = {
        "pytorch": t_model.head.weight.detach().numpy().T,
        "linen": np.asarray(l_state.params["head"]["kernel"]),
        "nnx": np.asarray(n_model.head.kernel[...]),
    }
    losses = {"pytorch": t_losses, "linen": l_losses, "nnx": n_losses}
    for name, head in heads.items():
        moved = changed(params0["head"]["kernel"], head)
        print(
            f"{name}: frozen body bit-identical: {frozen[name]} | head kernel moved by up to {moved:.3f}"
            f" | loss {losses[name][0]:.4f} -> {losses[name][-1]:.4f}"
        )
    biases = {
        "pytorch": t_model.head.bias.detach().numpy(),
        "linen": np.asarray(l_state.params["head"]["bias"]),
        "nnx": np.asarray(n_model.head.bias[...]),
    }
    for a, b in [("pytorch", "linen"), ("pytorch", "nnx"), ("linen", "nnx")]:  # the whole head
        diff = max(changed(heads[a], heads[b]), changed(biases[a], biases[b]))
        print(
            f"max |{a} - {b}| trained head, kernel and bias: {diff:.1e},"
            f" within {TOLERANCE:.0e}: {diff <= TOLERANCE}"
        )
    loss_gap = max(abs(a - b) for a, b in zip(t_losses, n_losses, strict=True))
    print(f"max |pytorch - nnx| loss over the {NUM_STEPS} steps: {loss_gap:.1e}")

    print("== What each optimizer keeps ==")
    names = {p: n for n, p in t_model.named_parameters()}
    with_grad = [n for n, p in t_model.named_parameters() if p.grad is not None]
    print("pytorch: parameters with a gradient:", with_grad)
    print("pytorch: optimizer state for:", [names[p] for p in t_opt.state])
    print("pytorch: optimizer state bytes:", torch_state_bytes(t_opt))
    full = torch_model(weights)
    full_opt = adam_torch(full.parameters())
    torch_step(full, full_opt, torch.from_numpy(x), torch.from_numpy(y))
    print("pytorch: optimizer state bytes, nothing frozen:", torch_state_bytes(full_opt))
    mu = l_state.opt_state.inner_states["trained"].inner_state[0].mu
    print("linen: mu at body/dense1/kernel:", mu["body"]["dense1"]["kernel"])
    print("linen: mu leaves:", [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(mu)])
    print("linen: opt_state bytes:", tree_bytes(l_state.opt_state))
    print("linen: opt_state bytes, nothing frozen:", tree_bytes(optax.adam(LEARNING_RATE).init(params0)))
    print("nnx: mu paths:", [p for p, _ in nnx.to_flat_state(n_opt.opt_state[0].mu)])
    print("nnx: attributes:", [name for name in vars(n_opt) if not name.startswith("_")])
    print("nnx: opt_state bytes:", tree_bytes(n_opt.opt_state), "| step:", int(n_opt.step[...]))
    full_nnx = nnx.Optimizer(nnx_model(weights), optax.adam(LEARNING_RATE), wrt=nnx.Param)
    print("nnx: opt_state bytes, wrt=nnx.Param:", tree_bytes(full_nnx.opt_state))
    numbers = sum(a.size for a in jax.tree.leaves(params0))
    head_numbers = sum(a.size for a in jax.tree.leaves(params0["head"]))
    print(f"numbers: head {head_numbers}, whole network {numbers}")

    print("== Optax's freezing tools ==")
    print("optax.multi_transform is optax.partition:", optax.multi_transform is optax.partition)
    mask = freeze_mask(params0)
    candidates = {
        "partition(adam, set_to_zero)": partition_tx(params0, optax.adam(LEARNING_RATE)),
        "selective_transform(adam)": optax.selective_transform(optax.adam(LEARNING_RATE), freeze_mask=mask),
        "chain(freeze, adam)": optax.chain(optax.freeze(mask), optax.adam(LEARNING_RATE)),
    }
    runs = {}
    for name, tx in candidates.items():
        runs[name], _ = linen_fine_tune(weights, lambda p, tx=tx: tx, num_steps=20)
        body_same = all_equal(params0["body"], runs[name].params["body"])
        print(
            f"{name}: opt_state {tree_bytes(runs[name].opt_state)} B, frozen body bit-identical: {body_same}"
        )
    reference = runs["partition(adam, set_to_zero)"].params
    for name in ["selective_transform(adam)", "chain(freeze, adam)"]:
        print(f"{name} gives the same parameters as partition:", all_equal(reference, runs[name].params))
    body_mu = runs["chain(freeze, adam)"].opt_state[1][0].mu["body"]
    print(
        "chain(freeze, adam): body moments all zero:",
        not any(np.asarray(m).any() for m in jax.tree.leaves(body_mu)),
    )

    print("== NNX: wrt and DiffState ==")
    model = nnx_model(weights)
    model.body.eval()

    def loss_fn(model):
        return cross_entropy(model(x), y)

    all_grads = nnx.jit(nnx.grad(loss_fn))(model)
    head_grads = nnx.jit(nnx.grad(loss_fn, argnums=nnx.DiffState(0, TRAINABLE)))(model)
    for label, grads in [("by default", all_grads), ("with DiffState", head_grads)]:
        print(f"gradients {label}:", {name: sorted(tree) for name, tree in nnx.to_pure_dict(grads).items()})
    every, _, _ = nnx_fine_tune(weights, optax.adam(LEARNING_RATE), diff_filter=nnx.Param)
    print("all gradients, wrt=head: frozen body bit-identical:", all_equal(nnx_start, nnx_body(every)))
    print(
        "all gradients, wrt=head: same head as DiffState:",
        all_equal(nnx.state(every.head), nnx.state(n_model.head)),
    )
    mismatch = nnx.Optimizer(nnx_model(weights), optax.adam(LEARNING_RATE), wrt=nnx.Param)
    try:
        mismatch.update(model, head_grads)
    except ValueError as error:
        first_line = str(error).splitlines()[0]
        print(f"wrt=nnx.Param with head-only gradients raises {type(error).__name__}: {first_line}")

    print("== Pitfall: weight decay that reaches the frozen body ==")
    adamw = optax.adamw(LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    orders = {
        "chain(freeze, adamw)": lambda p: optax.chain(optax.freeze(freeze_mask(p)), adamw),
        "partition(adamw, set_to_zero)": lambda p: partition_tx(p, adamw),
        "chain(add_decayed_weights, partition)": lambda p: optax.chain(
            optax.add_decayed_weights(WEIGHT_DECAY), partition_tx(p, optax.adam(LEARNING_RATE))
        ),
    }
    bodies = {}
    for name, make_tx in orders.items():
        body = bodies[name] = linen_fine_tune(weights, make_tx)[0].params["body"]
        moved = changed(params0["body"]["dense1"]["kernel"], body["dense1"]["kernel"])
        same = all_equal(params0["body"], body)
        print(f"linen {name}: body bit-identical: {same} | dense1 kernel moved by {moved:.4f}")
    ratio = bodies["chain(freeze, adamw)"]["dense1"]["kernel"] / params0["body"]["dense1"]["kernel"]
    expected = (1 - LEARNING_RATE * WEIGHT_DECAY) ** NUM_STEPS
    print(f"with chain(freeze, adamw), body kernel / start: from {ratio.min():.4f} to {ratio.max():.4f}")
    print(f"(1 - lr x wd)^{NUM_STEPS}: {expected:.4f}")
    model, _, _ = torch_fine_tune(weights, adamw_torch)
    print(
        "pytorch AdamW, body frozen from the start: body bit-identical:",
        all_equal(start_body, torch_body(model)),
    )
    for label, make in [("SGD with momentum", sgd_torch), ("AdamW", adamw_torch)]:
        for set_to_none in (True, False):
            moved, grad, kept = torch_freeze_midway(set_to_none, make)
            print(
                f"pytorch {label}, frozen midway, set_to_none={set_to_none}: body moved by {moved:.4f}"
                f" | .grad is None: {grad is None} | body parameters with state: {kept}"
            )
    model, _, _ = nnx_fine_tune(weights, adamw, diff_filter=nnx.Param)
    print("nnx adamw, wrt=head: body bit-identical:", all_equal(nnx_start, nnx_body(model)))
    wrong = optax.chain(optax.freeze(nnx.State({"body": True, "head": False})), adamw)
    model, _, _ = nnx_fine_tune(weights, wrong, wrt=nnx.Param, diff_filter=nnx.Param)
    print(
        "nnx chain(freeze, adamw), wrt=nnx.Param: body bit-identical:", all_equal(nnx_start, nnx_body(model))
    )

    print(f"== Pitfall: BatchNorm statistics in training mode, {BATCHNORM_STEPS} steps ==")
    model, _, _ = torch_fine_tune(weights, adam_torch, num_steps=BATCHNORM_STEPS, body_mode="train")
    body = torch_body(model)
    parameters = [k for k, _ in model.body.named_parameters()]
    print(
        "pytorch: parameters bit-identical:", all(np.array_equal(start_body[k], body[k]) for k in parameters)
    )
    moved = changed(start_body["norm.running_mean"], body["norm.running_mean"])
    tracked = int(start_body["norm.num_batches_tracked"]), int(body["norm.num_batches_tracked"])
    print(
        f"pytorch: running_mean moved by up to {moved:.4f} | num_batches_tracked:",
        tracked[0],
        "->",
        tracked[1],
    )
    before = torch_model(weights).body.eval()  # the pretrained body, its statistics untouched
    with torch.no_grad():
        drift = changed(before(torch.from_numpy(x)), model.body.eval()(torch.from_numpy(x)))
    print(f"pytorch: eval-mode body output changed by up to {drift:.4f}")
    state, _ = linen_fine_tune(
        weights, lambda p: partition_tx(p, optax.adam(LEARNING_RATE)), num_steps=BATCHNORM_STEPS, train=True
    )
    moved = changed(stats0["body"]["norm"]["mean"], state.batch_stats["body"]["norm"]["mean"])
    print(f"linen: parameters bit-identical: {all_equal(params0['body'], state.params['body'])}"
          f" | batch_stats mean moved by up to {moved:.4f}")  # fmt: skip
    model, _, _ = nnx_fine_tune(
        weights, optax.adam(LEARNING_RATE), num_steps=BATCHNORM_STEPS, body_mode="train"
    )
    initial = nnx_model(weights)
    same = all_equal(nnx.state(initial.body, nnx.Param), nnx.state(model.body, nnx.Param))
    moved = changed(initial.body.norm.mean[...], model.body.norm.mean[...])
    print(f"nnx: Param bit-identical: {same} | BatchStat mean moved by up to {moved:.4f}")

    print("== Exercise: unfreeze body.dense2 too, 20 steps ==")
    model, optimizer = second_stage(weights)
    initial = nnx_model(weights)
    for name in ["dense1", "norm"]:
        same = all_equal(nnx.state(getattr(initial.body, name)), nnx.state(getattr(model.body, name)))
        print(f"{name} bit-identical: {same}")
    dense2_moved = changed(initial.body.dense2.kernel[...], model.body.dense2.kernel[...])
    head_moved = changed(initial.head.kernel[...], model.head.kernel[...])
    print(f"dense2 kernel moved by {dense2_moved:.4f}, head kernel by {head_moved:.4f}")
    print("opt_state bytes:", tree_bytes(optimizer.opt_state))


if __name__ == "__main__":
    main()
