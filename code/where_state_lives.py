"""Where the state lives: the complete program behind docs/where-state-lives.md.

One small network (Linear 4->16, BatchNorm, ReLU, Dropout, Linear 16->3) with an Adam optimizer, built in
PyTorch, Flax Linen and Flax NNX and trained for one step. Every array of the model's state and of the
optimizer's state is listed with its path, kind, shape, dtype and bytes, and the totals are compared.

Run it with ``python code/where_state_lives.py``; tests/test_where_state_lives.py checks what it prints.
The functions are importable: ``from where_state_lives import torch_setup`` with code/ on ``sys.path``.
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import linen as nn
from flax import nnx
from flax.training import train_state

IN_FEATURES, HIDDEN, NUM_CLASSES, NUM_EXAMPLES = 4, 16, 3, 32
DROPOUT_RATE, LEARNING_RATE = 0.1, 0.01


def make_data(seed=0):
    """Seeded data as NumPy arrays, so that all three frameworks train on the same batch."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_EXAMPLES, IN_FEATURES)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=NUM_EXAMPLES).astype(np.int32)
    return x, y


# -- One row per array ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One array of the state: where it is, what it is for, and how much memory it takes."""

    path: str
    kind: str  # "parameter", "batch stat", ... optionally followed by the framework's name: "(buffer)"
    shape: tuple
    dtype: str
    numbers: int
    nbytes: int

    @property
    def group(self) -> str:
        return GROUPS[self.kind.split(" (")[0]]


# Every kind of array falls in one of four groups, the same in the three frameworks.
GROUPS = {
    "parameter": "trainable parameters",
    "batch stat": "other model state",
    "batch counter": "other model state",
    "rng key": "other model state",
    "rng count": "other model state",
    "moment": "optimizer moments",
    "step count": "optimizer step counts",
}


def torch_row(path, kind, tensor):
    return Row(
        path, kind, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."), tensor.numel(),
        tensor.numel() * tensor.element_size(),
    )  # fmt: skip


def jax_row(path, kind, array):
    if jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):  # a typed key: count its raw bits
        nbytes = jax.random.key_data(array).nbytes
    else:
        nbytes = array.nbytes
    return Row(path, kind, tuple(array.shape), str(array.dtype), int(array.size), int(nbytes))


def keypath(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")


def totals(rows):
    """{group: (numbers, bytes)} over the rows."""
    sums = defaultdict(lambda: [0, 0])
    for row in rows:
        sums[row.group][0] += row.numbers
        sums[row.group][1] += row.nbytes
    return {group: tuple(value) for group, value in sums.items()}


def describe(row) -> str:
    """One cell of a side-by-side table: the path, the framework's own name, shape, dtype and bytes."""
    own_name = row.kind.partition(" (")[2].rstrip(")")  # "buffer", "BatchStat", ...
    shape = "(" + ", ".join(map(str, row.shape)) + ("," if len(row.shape) == 1 else "") + ")"
    dtype = row.dtype.replace("<", "&lt;")  # key<fry> is not an HTML tag
    return f"`{row.path}` {own_name} {shape} {dtype}, {row.nbytes} B".replace("  ", " ")


def side_by_side(correspondences, *rows_by_framework) -> str:
    """A markdown table with a line per (what, PyTorch path, Linen path, NNX path); None: not kept there.

    Checks that the correspondences list every array of each framework exactly once.
    """
    found = [{row.path: row for row in rows} for rows in rows_by_framework]
    for column, rows in enumerate(found, start=1):
        listed = [line[column] for line in correspondences if line[column] is not None]
        assert sorted(listed) == sorted(rows), f"column {column} does not list each array once"
    lines = ["| | PyTorch | Flax Linen | Flax NNX |", "| --- | --- | --- | --- |"]
    for what, *paths in correspondences:
        cells = [describe(rows[path]) if path else "—" for rows, path in zip(found, paths, strict=True)]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


MODEL_STATE = [  # what it is; its path in PyTorch, Linen, NNX (None: not kept in the model's state)
    ("parameter: dense1 weights", "dense1.weight", "params/dense1/kernel", "dense1/kernel"),
    ("parameter: dense1 bias", "dense1.bias", "params/dense1/bias", "dense1/bias"),
    ("parameter: BatchNorm scale", "norm.weight", "params/norm/scale", "norm/scale"),
    ("parameter: BatchNorm bias", "norm.bias", "params/norm/bias", "norm/bias"),
    ("parameter: dense2 weights", "dense2.weight", "params/dense2/kernel", "dense2/kernel"),
    ("parameter: dense2 bias", "dense2.bias", "params/dense2/bias", "dense2/bias"),
    ("batch stat: running mean", "norm.running_mean", "batch_stats/norm/mean", "norm/mean"),
    ("batch stat: running variance", "norm.running_var", "batch_stats/norm/var", "norm/var"),
    ("batch counter", "norm.num_batches_tracked", None, None),
    ("rng: Dropout key", None, None, "dropout/rngs/key"),
    ("rng: keys drawn so far", None, None, "dropout/rngs/count"),
]


def optimizer_correspondences(torch_parameter_names):
    """The optimizer's lines, from the parameters' lines; PyTorch names a parameter by its index."""
    torch_index = {name: index for index, name in enumerate(torch_parameter_names)}
    lines = []
    for what, torch_name, _, nnx_path in MODEL_STATE[:6]:
        i, what = torch_index[torch_name], what.removeprefix("parameter: ")
        # mu and nu are trees shaped like the parameters: the same paths in Linen and in NNX
        lines += [
            (f"{what}: 1st moment", f"state/{i}/exp_avg", *[f"opt_state/0/mu/{nnx_path}"] * 2),
            (f"{what}: 2nd moment", f"state/{i}/exp_avg_sq", *[f"opt_state/0/nu/{nnx_path}"] * 2),
            (f"{what}: step", f"state/{i}/step", None, None),
        ]
    return [
        *lines,
        ("Adam step count", None, "opt_state/0/count", "opt_state/0/count"),
        ("training loop step", None, "step", "step"),
    ]


# -- PyTorch ---------------------------------------------------------------------------------------


class TorchMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense1 = torch.nn.Linear(IN_FEATURES, HIDDEN)
        self.norm = torch.nn.BatchNorm1d(HIDDEN)  # momentum 0.1 in PyTorch is Flax's 0.9
        self.dropout = torch.nn.Dropout(DROPOUT_RATE)
        self.dense2 = torch.nn.Linear(HIDDEN, NUM_CLASSES)

    def forward(self, x):
        x = torch.relu(self.norm(self.dense1(x)))
        return self.dense2(self.dropout(x))


def torch_setup(seed=0):
    torch.manual_seed(seed)
    model = TorchMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    return model, optimizer


def torch_step(model, optimizer, x, y):
    """One step; the caller chooses the mode (model.train()), outside the step."""
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y).long())
    loss.backward()
    optimizer.step()
    return loss.item()


def torch_model_rows(model):
    """model.state_dict(): the parameters and the buffers, told apart by named_parameters()."""
    parameters = dict(model.named_parameters())
    rows = []
    for name, tensor in model.state_dict().items():
        if name in parameters:
            kind = "parameter"
        elif name.endswith("num_batches_tracked"):
            kind = "batch counter (buffer)"
        else:
            kind = "batch stat (buffer)"
        rows.append(torch_row(name, kind, tensor))
    return rows


def torch_optimizer_rows(optimizer):
    """optimizer.state_dict()["state"]: per parameter (by index) its step and its two moments."""
    rows = []
    for index, per_parameter in optimizer.state_dict()["state"].items():
        for name, tensor in per_parameter.items():
            kind = "step count" if name == "step" else "moment"
            rows.append(torch_row(f"state/{index}/{name}", kind, tensor))
    return rows


# -- Flax Linen -----------------------------------------------------------------------------------


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(HIDDEN, name="dense1")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="norm")(x)
        x = nn.relu(x)
        x = nn.Dropout(DROPOUT_RATE, deterministic=not train, name="dropout")(x)
        return nn.Dense(NUM_CLASSES, name="dense2")(x)


class TrainState(train_state.TrainState):
    batch_stats: Any


def linen_setup(seed=0, module=None):
    module = module or LinenMLP()
    variables = module.init(jax.random.key(seed), np.zeros((1, IN_FEATURES), np.float32), train=False)
    return TrainState.create(
        apply_fn=module.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=optax.adam(LEARNING_RATE),
    )


@jax.jit
def linen_step(state, x, y, dropout_key):
    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            x,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": dropout_key},
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads).replace(batch_stats=batch_stats), loss


def linen_model_rows(state):
    """The two collections of variables: params and batch_stats."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    kinds = {"params": "parameter", "batch_stats": "batch stat"}
    leaves = jax.tree_util.tree_leaves_with_path(variables)
    return [jax_row(keypath(path), kinds[path[0].key], leaf) for path, leaf in leaves]


def linen_optimizer_rows(state):
    """TrainState's own step, then optax's state: (ScaleByAdamState(count, mu, nu), EmptyState())."""
    rows = [jax_row("step", "step count (TrainState)", np.asarray(state.step))]
    for path, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state):
        name = path[1].name  # path[0] is the position in the chain, path[1] the field
        kind = "step count" if name == "count" else "moment"
        rows.append(jax_row("opt_state/" + keypath(path), kind, leaf))
    return rows


# -- Flax NNX ---------------------------------------------------------------------------------------


class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.norm = nnx.BatchNorm(HIDDEN, momentum=0.9, rngs=rngs)
        self.dropout = nnx.Dropout(DROPOUT_RATE, rngs=rngs)
        self.dense2 = nnx.Linear(HIDDEN, NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.norm(self.dense1(x)))
        return self.dense2(self.dropout(x))


def nnx_setup(seed=0, cls=NNXMLP):
    model = cls(nnx.Rngs(params=seed, dropout=seed + 1))
    optimizer = nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=nnx.Param)
    return model, optimizer


@nnx.jit
def nnx_step(model, optimizer, x, y):
    def loss_fn(model):
        logits = model(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


NNX_KINDS = {
    nnx.Param: "parameter",
    nnx.BatchStat: "batch stat",
    nnx.RngKey: "rng key",
    nnx.RngCount: "rng count",
}


def nnx_model_rows(model):
    """nnx.state(model), one row per Variable; the kind comes from the Variable's type."""
    rows = []
    for path, variable in nnx.to_flat_state(nnx.state(model)):
        kind = NNX_KINDS[type(variable)]
        rows.append(jax_row("/".join(map(str, path)), f"{kind} ({type(variable).__name__})", variable[...]))
    return rows


def nnx_optimizer_rows(optimizer):
    """nnx.state(optimizer): its own step, then optax's state wrapped in OptState Variables."""
    rows = []
    for path, variable in nnx.to_flat_state(nnx.state(optimizer)):
        kind = "step count" if path[-1] in ("step", "count") else "moment"
        rows.append(jax_row("/".join(map(str, path)), f"{kind} ({type(variable).__name__})", variable[...]))
    return rows


# -- All three --------------------------------------------------------------------------------------


def run_all(seed=0):
    """Build the three, take one training step in each; return {framework: (model rows, optimizer rows)}."""
    x, y = make_data(seed)
    torch_model, torch_optimizer = torch_setup(seed)
    empty_before_step = len(torch_optimizer.state_dict()["state"]) == 0
    torch_model.train()  # modes are switched outside the steps
    torch_step(torch_model, torch_optimizer, x, y)

    state = linen_setup(seed)
    state, _ = linen_step(state, x, y, jax.random.key(seed + 1))

    nnx_model, nnx_optimizer = nnx_setup(seed)
    nnx_model.train()
    nnx_step(nnx_model, nnx_optimizer, x, y)

    rows = {
        "PyTorch": (torch_model_rows(torch_model), torch_optimizer_rows(torch_optimizer)),
        "Linen": (linen_model_rows(state), linen_optimizer_rows(state)),
        "NNX": (nnx_model_rows(nnx_model), nnx_optimizer_rows(nnx_optimizer)),
    }
    return rows, empty_before_step


def compare(rows):
    """{framework: {group: (numbers, bytes)}} for the model's and the optimizer's rows together."""
    return {name: totals(model + optimizer) for name, (model, optimizer) in rows.items()}


def check(counts):
    """The claims of the page: the same trainable parameters, and Adam keeps two moments for each."""
    trainable = {name: groups["trainable parameters"] for name, groups in counts.items()}
    assert len(set(trainable.values())) == 1, trainable
    for groups in counts.values():
        numbers, nbytes = groups["trainable parameters"]
        assert groups["optimizer moments"] == (2 * numbers, 2 * nbytes)
    return trainable["PyTorch"]


GROUP_ORDER = ["trainable parameters", "other model state", "optimizer moments", "optimizer step counts"]


# -- Step counts and hyperparameters ----------------------------------------------------------------


def torch_steps_when_unused(num_steps=3):
    """Adam on a and b, b in the first step's loss only: PyTorch skips b once its .grad is None."""
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    adam = torch.optim.Adam([a, b], lr=0.1)
    for step in range(num_steps):
        adam.zero_grad()  # set_to_none: every .grad becomes None
        loss = (a**2).sum() + ((b**2).sum() if step == 0 else 0)
        loss.backward()
        adam.step()
    return int(adam.state[a]["step"]), int(adam.state[b]["step"]), b.detach().tolist()


def optax_steps_when_unused(num_steps=3):
    """The same in Optax: b's gradient is zero, not missing, so one count for all and b keeps moving."""

    def loss_of(params, step):
        return (params["a"] ** 2).sum() + ((params["b"] ** 2).sum() if step == 0 else 0.0)

    adam = optax.adam(0.1)
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    opt_state = adam.init(params)
    for step in range(num_steps):
        updates, opt_state = adam.update(jax.grad(loss_of)(params, step), opt_state)
        params = optax.apply_updates(params, updates)
    return int(opt_state[0].count), params["b"].tolist()


def injected_learning_rates(new_rate=0.001):
    """The learning rate read and changed: a param_group in PyTorch, opt_state with inject_hyperparams."""
    _, torch_optimizer = torch_setup()
    torch_optimizer.param_groups[0]["lr"] = new_rate
    injected = optax.inject_hyperparams(optax.adam)(learning_rate=LEARNING_RATE)
    nnx_model, _ = nnx_setup()
    nnx_optimizer = nnx.Optimizer(nnx_model, injected, wrt=nnx.Param)
    rate = nnx_optimizer.opt_state.hyperparams["learning_rate"]  # an OptArray variable
    before = round(float(rate[...]), 6)
    rate[...] = new_rate
    return {
        "PyTorch param_groups": torch_optimizer.state_dict()["param_groups"][0]["lr"],
        "NNX opt_state.hyperparams before": before,
        "NNX opt_state.hyperparams after": round(float(rate[...]), 6),
        "plain adam hyperparams in opt_state": hasattr(optax.adam(LEARNING_RATE).init({}), "hyperparams"),
    }


# -- The exercise: a second BatchNorm, on the 3 outputs ---------------------------------------------


class TorchMLP2(TorchMLP):
    def __init__(self):
        super().__init__()
        self.norm2 = torch.nn.BatchNorm1d(NUM_CLASSES)

    def forward(self, x):
        return self.norm2(super().forward(x))


class LinenMLP2(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = LinenMLP(name="mlp")(x, train)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, name="norm2")(x)


class NNXMLP2(NNXMLP):
    def __init__(self, rngs: nnx.Rngs):
        super().__init__(rngs)
        self.norm2 = nnx.BatchNorm(NUM_CLASSES, momentum=0.9, rngs=rngs)

    def __call__(self, x):
        return self.norm2(super().__call__(x))


# Predicted from the counts of the one-BatchNorm model: norm2 adds a scale and a bias of 3 (6 parameters,
# 24 bytes) and a mean and a variance of 3 (6 batch stats, 24 bytes), plus one int64 num_batches_tracked
# in PyTorch; Adam adds two moments per new parameter, and PyTorch one step per new parameter tensor.
EXERCISE_PREDICTION = {
    "PyTorch": {"trainable parameters": (169, 676), "other model state": (40, 168),
                "optimizer moments": (338, 1352), "optimizer step counts": (8, 32)},
    "Linen": {"trainable parameters": (169, 676), "other model state": (38, 152),
              "optimizer moments": (338, 1352), "optimizer step counts": (2, 8)},
    "NNX": {"trainable parameters": (169, 676), "other model state": (40, 164),
            "optimizer moments": (338, 1352), "optimizer step counts": (2, 8)},
}  # fmt: skip


def exercise(seed=0):
    """The totals of the two-BatchNorm model in each framework, after one training step."""
    x, y = make_data(seed)
    torch.manual_seed(seed)
    torch_model = TorchMLP2()
    torch_optimizer = torch.optim.Adam(torch_model.parameters(), lr=LEARNING_RATE)
    torch_model.train()
    torch_step(torch_model, torch_optimizer, x, y)
    state, _ = linen_step(linen_setup(seed, LinenMLP2()), x, y, jax.random.key(seed + 1))
    nnx_model, nnx_optimizer = nnx_setup(seed, NNXMLP2)
    nnx_model.train()
    nnx_step(nnx_model, nnx_optimizer, x, y)
    return compare({
        "PyTorch": (torch_model_rows(torch_model), torch_optimizer_rows(torch_optimizer)),
        "Linen": (linen_model_rows(state), linen_optimizer_rows(state)),
        "NNX": (nnx_model_rows(nnx_model), nnx_optimizer_rows(nnx_optimizer)),
    })  # fmt: skip


def main():
    rows, empty_before_step = run_all()
    print("== PyTorch optimizer before the first step")
    print(f"optimizer.state_dict()['state'] is empty: {empty_before_step}")
    for name, (model_rows, optimizer_rows) in rows.items():
        print(f"== {name}: model state")
        for row in model_rows:
            print(f"{row.path:32} {row.kind:28} {row.shape!s:9} {row.dtype:9} {row.nbytes:5} B")
        print(f"== {name}: optimizer state")
        for row in optimizer_rows:
            print(f"{row.path:32} {row.kind:28} {row.shape!s:9} {row.dtype:9} {row.nbytes:5} B")
    print("== Side by side")
    names = [name for name, _ in TorchMLP().named_parameters()]
    model_table = side_by_side(MODEL_STATE, *(rows[name][0] for name in rows))
    optimizer_table = side_by_side(optimizer_correspondences(names), *(rows[name][1] for name in rows))
    for name, table in [("model state", model_table), ("optimizer state", optimizer_table)]:
        print(f"{name}: {len(table.splitlines()) - 2} lines cover every array of each framework")
    counts = compare(rows)
    print("== Totals (numbers / bytes)")
    print(f"{'':24}" + "".join(f"{name:>16}" for name in counts))
    for group in GROUP_ORDER:
        cells = "".join(f"{f'{n} / {b} B':>16}" for n, b in (counts[name][group] for name in counts))
        print(f"{group:24}{cells}")
    numbers, nbytes = check(counts)
    print("== Checks")
    print(f"trainable parameters agree: {numbers} numbers, {nbytes} bytes in each framework")
    print(f"Adam moments are twice the parameters: {2 * numbers} numbers, {2 * nbytes} bytes in each")
    print("== Step counts when a parameter is not used")
    a_steps, b_steps, torch_b = torch_steps_when_unused()
    print(f"PyTorch Adam steps: a {a_steps}, b {b_steps}; b afterwards {[round(v, 4) for v in torch_b]}")
    count, optax_b = optax_steps_when_unused()
    print(f"Optax count: {count}; b afterwards {[round(v, 4) for v in optax_b]}")
    print("== Hyperparameters")
    for label, value in injected_learning_rates().items():
        print(f"{label}: {value}")
    print("== Exercise: a second BatchNorm")
    counted = exercise()
    for name, groups in counted.items():
        line = ", ".join(f"{group} {groups[group][0]} / {groups[group][1]} B" for group in GROUP_ORDER)
        print(f"{name}: {line}")
    print(f"counts as predicted: {counted == EXERCISE_PREDICTION}")


if __name__ == "__main__":
    main()
