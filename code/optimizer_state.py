"""Optimizer state beyond Adam's moments: gradient accumulation, learning-rate schedules and an EMA of the
weights, in PyTorch, Flax Linen and Flax NNX (the program of docs/optimizer-state.md).

Run it from the repository root: python code/optimizer_state.py
"""

import copy
import io
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import linen as nn
from flax import nnx
from flax.training import train_state
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

IN_FEATURES, HIDDEN, NUM_CLASSES = 4, 16, 2
LEARNING_RATE = 0.01
MICRO_BATCH, NUM_MICRO = 8, 4
BATCH = MICRO_BATCH * NUM_MICRO  # 32 examples in one optimizer step
ACCUMULATED_STEPS = 3
NUM_STEPS, SPLIT = 10, 4  # the schedule's length, and where the interrupted run stops
EMA_DECAY, EMA_STEPS, EMA_BATCH, EMA_LEARNING_RATE = 0.9, 100, 16, 0.03
TOLERANCE = 1e-6  # accumulated versus whole-batch parameters
torch.set_num_threads(1)  # one summation order on every run, so the printed differences repeat exactly


def make_data(seed, num_examples):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_examples, IN_FEATURES)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] + x[:, 2] > 0).astype(np.int32)
    return x, y


x_train, y_train = make_data(0, 1024)
x_test, y_test = make_data(1, 512)


def batch(step, size=BATCH):
    """The batch of a step depends on the step number only, so a resumed run sees the same batches."""
    start = step * size % len(x_train)
    return x_train[start : start + size], y_train[start : start + size]


def micro_batches(x, y):
    for i in range(NUM_MICRO):
        micro = slice(i * MICRO_BATCH, (i + 1) * MICRO_BATCH)
        yield x[micro], y[micro]


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def tree_bytes(tree):
    return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))


def all_zero(tree):
    return all(bool((leaf == 0).all()) for leaf in jax.tree.leaves(tree))


def largest_difference(a, b):
    return max(
        float(jnp.abs(u - v).max()) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def tree_lines(tree):
    """A pytree's leaves, one line each: path, dtype and shape."""
    lines = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        name = jax.tree_util.keystr(path, simple=True, separator="/")
        lines.append(f"  {name:34} {leaf.dtype}{list(leaf.shape)}")
    return lines


def rates_text(rates):
    return " ".join(f"{rate:.5f}" for rate in rates)


schedule = optax.cosine_decay_schedule(LEARNING_RATE, decay_steps=NUM_STEPS)


# -- The three models ---------------------------------------------------------------------------------


class TorchMLP(torch.nn.Module):
    def __init__(self, norm=False):
        super().__init__()
        self.dense1 = torch.nn.Linear(IN_FEATURES, HIDDEN)
        self.norm = torch.nn.BatchNorm1d(HIDDEN) if norm else torch.nn.Identity()
        self.dense2 = torch.nn.Linear(HIDDEN, NUM_CLASSES)

    def forward(self, x):
        return self.dense2(torch.relu(self.norm(self.dense1(x))))


def torch_tensors(x, y):
    return torch.from_numpy(x), torch.from_numpy(y).long()


def torch_loss(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


def torch_parameters(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


class LinenMLP(nn.Module):
    norm: bool = False

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Dense(HIDDEN, name="dense1")(x)
        if self.norm:
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="norm")(x)
        return nn.Dense(NUM_CLASSES, name="dense2")(nn.relu(x))


linen_module = LinenMLP()


def linen_state(tx, seed=0):
    variables = linen_module.init(jax.random.key(seed), jnp.zeros((1, IN_FEATURES)))
    return train_state.TrainState.create(apply_fn=linen_module.apply, params=variables["params"], tx=tx)


@jax.jit
def linen_step(state, x, y):
    def loss_fn(params):
        return cross_entropy(state.apply_fn({"params": params}, x), y)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, norm=False):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.norm = nnx.BatchNorm(HIDDEN, momentum=0.9, rngs=rngs) if norm else None
        self.dense2 = nnx.Linear(HIDDEN, NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        x = self.dense1(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.dense2(nnx.relu(x))


@nnx.jit
def nnx_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(lambda model: cross_entropy(model(x), y))(model)
    optimizer.update(model, grads)
    return loss


# -- Gradient accumulation ------------------------------------------------------------------------------


def accumulate_torch(norm=False, steps=ACCUMULATED_STEPS):
    """Micro-batches into .grad, one step, zero_grad; a twin on the whole batch. Returns a dict of results."""
    torch.manual_seed(0)
    accumulating = TorchMLP(norm=norm)
    whole = copy.deepcopy(accumulating)
    accumulating_opt = torch.optim.Adam(accumulating.parameters(), lr=LEARNING_RATE)
    whole_opt = torch.optim.Adam(whole.parameters(), lr=LEARNING_RATE)
    grad_differences = []
    for step in range(steps):
        x, y = torch_tensors(*batch(step))
        for x_micro, y_micro in zip(x.split(MICRO_BATCH), y.split(MICRO_BATCH), strict=True):
            (torch_loss(accumulating, x_micro, y_micro) / NUM_MICRO).backward()  # adds into .grad
        held = sum(p.grad.nbytes for p in accumulating.parameters())
        torch_loss(whole, x, y).backward()
        grad_differences += [
            (p.grad - q.grad).abs().max().item()
            for p, q in zip(accumulating.parameters(), whole.parameters(), strict=True)
        ]
        for optimizer in (accumulating_opt, whole_opt):
            optimizer.step()
            optimizer.zero_grad()  # sets each .grad to None
    return {
        "grad_difference": max(grad_differences),
        "param_difference": largest_difference(torch_parameters(accumulating), torch_parameters(whole)),
        "adam_steps": accumulating_opt.state[accumulating.dense1.weight]["step"].item(),
        "held": held,
        "param_bytes": sum(p.nbytes for p in accumulating.parameters()),
        "grads_after_zero_grad": {p.grad for p in accumulating.parameters()},
    }


def accumulate_linen():
    """MultiSteps(adam) in a TrainState, the unchanged step on micro-batches; a twin on the whole batch."""
    state = linen_state(optax.MultiSteps(optax.adam(LEARNING_RATE), every_k_schedule=NUM_MICRO))
    whole_state = linen_state(optax.adam(LEARNING_RATE))
    tree = tree_lines(state.opt_state)
    initial_params = state.params
    rows = []
    for step in range(ACCUMULATED_STEPS):
        x, y = batch(step)
        for x_micro, y_micro in micro_batches(x, y):
            before = state.params
            state, _ = linen_step(state, x_micro, y_micro)
            opt = state.opt_state
            moved = largest_difference(before, state.params) > 0
            counts = (opt.mini_step, opt.gradient_step, opt.inner_opt_state[0].count, state.step)
            rows.append((*(int(c) for c in counts), moved, all_zero(opt.acc_grads)))
            if len(rows) == 3:
                after_three = opt.acc_grads
        whole_state, _ = linen_step(whole_state, x, y)

    @jax.jit
    def gradient(params, x, y):
        return jax.grad(lambda params: cross_entropy(linen_module.apply({"params": params}, x), y))(params)

    first_three = list(micro_batches(*batch(0)))[:3]
    mean = jax.tree.map(lambda *grads: sum(grads) / 3, *[gradient(initial_params, *xy) for xy in first_three])
    return {
        "tree": tree,
        "rows": rows,
        "mean_difference": largest_difference(after_three, mean),
        "param_difference": largest_difference(state.params, whole_state.params),
        "acc_bytes": tree_bytes(state.opt_state.acc_grads),
        "param_bytes": tree_bytes(state.params),
        "adam_bytes": tree_bytes(whole_state.opt_state),
        "multisteps_bytes": tree_bytes(state.opt_state),
    }


def accumulate_nnx():
    """nnx.Optimizer with MultiSteps(adam); a twin on the whole batch."""
    model = NNXMLP(nnx.Rngs(0))
    whole_model = nnx.clone(model)
    accumulate = optax.MultiSteps(optax.adam(LEARNING_RATE), every_k_schedule=NUM_MICRO)
    optimizer = nnx.Optimizer(model, accumulate, wrt=nnx.Param)
    whole_optimizer = nnx.Optimizer(whole_model, optax.adam(LEARNING_RATE), wrt=nnx.Param)
    tree = tree_lines(nnx.to_pure_dict(nnx.state(optimizer)))
    rows = []
    for step in range(ACCUMULATED_STEPS):
        x, y = batch(step)
        for x_micro, y_micro in micro_batches(x, y):
            before = nnx.clone(nnx.state(model, nnx.Param))
            nnx_step(model, optimizer, x_micro, y_micro)
            opt = optimizer.opt_state
            moved = largest_difference(before, nnx.state(model, nnx.Param)) > 0
            counts = (opt.mini_step, opt.gradient_step, opt.inner_opt_state[0].count, optimizer.step)
            rows.append((*(int(c[...]) for c in counts), moved, all_zero(opt.acc_grads)))
        nnx_step(whole_model, whole_optimizer, x, y)
    params = nnx.state(model, nnx.Param)
    return {
        "tree": tree,
        "rows": rows,
        "param_difference": largest_difference(params, nnx.state(whole_model, nnx.Param)),
        "acc_bytes": tree_bytes(optimizer.opt_state.acc_grads),
        "param_bytes": tree_bytes(params),
        "adam_bytes": tree_bytes(whole_optimizer.opt_state),
        "multisteps_bytes": tree_bytes(optimizer.opt_state),
    }


# -- Learning-rate schedules ------------------------------------------------------------------------------


def torch_training(seed=0):
    torch.manual_seed(seed)
    model = TorchMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=NUM_STEPS)
    return model, optimizer, scheduler


def torch_train(model, optimizer, scheduler, steps):
    rates = []
    for step in steps:
        rates.append(optimizer.param_groups[0]["lr"])  # the rate this step uses
        optimizer.zero_grad()
        torch_loss(model, *torch_tensors(*batch(step))).backward()
        optimizer.step()
        scheduler.step()  # after optimizer.step(): sets the next step's rate
    return rates


scheduled_adam = optax.adam(schedule)  # Linen: the schedule reads ScaleByScheduleState.count
scheduled_tx = optax.inject_hyperparams(optax.adam)(learning_rate=schedule)  # NNX: the rate is state too


def linen_train(state, steps):
    rates = []
    for step in steps:
        rates.append(float(schedule(state.opt_state[1].count)))  # the rate this step will use
        state, _ = linen_step(state, *batch(step))
    return state, rates


def nnx_training(seed=0):
    model = NNXMLP(nnx.Rngs(seed))
    return model, nnx.Optimizer(model, scheduled_tx, wrt=nnx.Param)


def nnx_train(model, optimizer, steps):
    rates = []
    for step in steps:
        nnx_step(model, optimizer, *batch(step))
        rates.append(float(optimizer.opt_state.hyperparams["learning_rate"][...]))  # the rate it used
    return rates


def torch_resume(reference_model, reference_rates):
    """Stop after SPLIT steps, save, restore into new objects: the model with each part of the rest."""
    model, optimizer, scheduler = torch_training()
    torch_train(model, optimizer, scheduler, range(SPLIT))
    buffer = io.BytesIO()
    saved = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    torch.save({name: part.state_dict() for name, part in saved.items()}, buffer)
    rows = []
    for parts in [(), ("optimizer",), ("scheduler",), ("optimizer", "scheduler")]:
        buffer.seek(0)
        checkpoint = torch.load(buffer)
        model, optimizer, scheduler = torch_training(seed=1)
        model.load_state_dict(checkpoint["model"])
        for name in parts:
            {"optimizer": optimizer, "scheduler": scheduler}[name].load_state_dict(checkpoint[name])
        lr_now, last_lr = optimizer.param_groups[0]["lr"], scheduler.get_last_lr()[0]
        rates = torch_train(model, optimizer, scheduler, range(SPLIT, NUM_STEPS))
        same_weights = largest_difference(torch_parameters(model), torch_parameters(reference_model)) == 0
        label = " + ".join(("model",) + parts)
        rows.append((label, lr_now, last_lr, rates, rates == reference_rates[SPLIT:], same_weights))
    return rows


def linen_resume(reference_state, reference_rates):
    state, _ = linen_train(linen_state(scheduled_adam), range(SPLIT))
    saved = flax.serialization.to_bytes(state)  # params and opt_state, counts included
    fresh = linen_state(scheduled_adam, seed=1)
    restored = flax.serialization.from_bytes(fresh, saved)
    rows = []
    for label, state in [
        ("params only", fresh.replace(params=restored.params)),
        ("whole TrainState", restored),
    ]:
        state, rates = linen_train(state, range(SPLIT, NUM_STEPS))
        same_weights = largest_difference(state.params, reference_state.params) == 0
        rows.append((label, rates, rates == reference_rates[SPLIT:], same_weights))
    return rows


def nnx_resume(reference_model, reference_rates):
    model, optimizer = nnx_training(seed=0)
    nnx_train(model, optimizer, range(SPLIT))
    saved = flax.serialization.to_bytes(
        {"model": nnx.to_pure_dict(nnx.state(model)), "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}
    )
    rows = []
    for parts in [("model",), ("model", "optimizer")]:
        model, optimizer = nnx_training(seed=1)
        objects = {"model": model, "optimizer": optimizer}
        target = {name: nnx.to_pure_dict(nnx.state(objects[name])) for name in parts}
        restored = flax.serialization.from_bytes(target, saved)
        for name in parts:
            state = nnx.state(objects[name])
            nnx.replace_by_pure_dict(state, restored[name])
            nnx.update(objects[name], state)
        rates = nnx_train(model, optimizer, range(SPLIT, NUM_STEPS))
        same_weights = largest_difference(nnx.state(model), nnx.state(reference_model)) == 0
        rows.append((" + ".join(parts), rates, rates == reference_rates[SPLIT:], same_weights))
    return rows


# -- EMA of the weights ------------------------------------------------------------------------------------


def torch_ema():
    torch.manual_seed(0)
    model = TorchMLP(norm=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=EMA_LEARNING_RATE)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA_DECAY))
    ema_buffers = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA_DECAY), use_buffers=True)
    result = {"n_averaged_before": ema.n_averaged.item()}
    for step in range(EMA_STEPS):
        optimizer.zero_grad()
        torch_loss(model, *torch_tensors(*batch(step, EMA_BATCH))).backward()
        optimizer.step()
        ema.update_parameters(model)
        ema_buffers.update_parameters(model)
        if step == 0:
            result["first_update_copies"] = torch.equal(ema.module.dense1.weight, model.dense1.weight)
    result["n_averaged_after"] = ema.n_averaged.item()
    result["average_is_weights"] = torch.equal(ema.module.dense1.weight, model.dense1.weight)
    result["buffers_copied"] = torch.equal(ema.module.norm.running_mean, model.norm.running_mean)
    result["use_buffers_copied"] = torch.equal(ema_buffers.module.norm.running_mean, model.norm.running_mean)
    result["parameter_types"] = {type(p).__name__ for p in ema.parameters()}
    result["requires_grad"] = {p.requires_grad for p in ema.parameters()}
    model.eval()
    ema.eval()
    x, y = torch_tensors(x_test, y_test)
    with torch.no_grad():
        for label, network in [("weights", model), ("average", ema)]:
            logits = network(x)
            accuracy = (logits.argmax(1) == y).float().mean().item()
            result[label] = (torch_loss(network, x, y).item(), accuracy)
    return result


class EMATrainState(train_state.TrainState):
    batch_stats: Any
    ema_params: Any  # a pytree like params; the optimizer never sees it


norm_module = LinenMLP(norm=True)


@jax.jit
def linen_ema_step(state, x, y):
    def loss_fn(params):
        variables = {"params": params, "batch_stats": state.batch_stats}
        logits, updates = state.apply_fn(variables, x, train=True, mutable=["batch_stats"])
        return cross_entropy(logits, y), updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    average = jax.tree.map(lambda a, p: EMA_DECAY * a + (1 - EMA_DECAY) * p, state.ema_params, state.params)
    return state.replace(batch_stats=batch_stats, ema_params=average), loss


def linen_ema():
    variables = norm_module.init(jax.random.key(0), jnp.zeros((1, IN_FEATURES)), train=False)
    state = EMATrainState.create(
        apply_fn=norm_module.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        ema_params=variables["params"],  # the average starts at the initial weights
        tx=optax.adam(EMA_LEARNING_RATE),
    )
    for step in range(EMA_STEPS):
        state, _ = linen_ema_step(state, *batch(step, EMA_BATCH))
    result = {
        "arrays": [
            len(jax.tree.leaves(tree)) for tree in (state.params, state.ema_params, *state.opt_state[0][1:])
        ],
        "average_is_weights": largest_difference(state.ema_params, state.params) == 0,
    }
    for label, params in [("weights", state.params), ("average", state.ema_params)]:
        variables = {"params": params, "batch_stats": state.batch_stats}  # the model's statistics
        logits = norm_module.apply(variables, x_test, train=False)
        result[label] = (float(cross_entropy(logits, y_test)), float((logits.argmax(1) == y_test).mean()))
    return result


class EMAParam(nnx.Variable):
    """A moving average of a parameter: state of the model that no optimizer trains."""


def is_variable(x):
    return isinstance(x, nnx.Variable)


class WithEMA(nnx.Module):
    def __init__(self, model, decay):
        self.model = model
        self.decay = decay
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        averages = jax.tree.map(lambda p: EMAParam(jnp.copy(p[...])), params, is_leaf=is_variable)
        self.average = nnx.merge(graphdef, averages, nnx.clone(rest))  # same class, EMAParam weights

    def update_average(self):
        def blend(average, param):
            average[...] = self.decay * average[...] + (1 - self.decay) * param[...]

        params = nnx.state(self.model, nnx.Param)
        jax.tree.map(blend, nnx.state(self.average, EMAParam), params, is_leaf=is_variable)
        nnx.update(self.average, nnx.state(self.model, nnx.BatchStat))  # copied, as in PyTorch


@nnx.jit
def nnx_ema_step(trainer, optimizer, x, y):
    def loss_fn(trainer):
        return cross_entropy(trainer.model(x), y)

    loss, grads = nnx.value_and_grad(loss_fn)(trainer)  # gradients for the nnx.Param variables
    optimizer.update(trainer, grads)
    trainer.update_average()
    return loss


def nnx_ema():
    trainer = WithEMA(NNXMLP(nnx.Rngs(0), norm=True), EMA_DECAY)
    optimizer = nnx.Optimizer(trainer, optax.adam(EMA_LEARNING_RATE), wrt=nnx.Param)
    result = {
        "kernel_type": type(trainer.average.dense1.kernel).__name__,
        "moments": sorted(nnx.to_pure_dict(optimizer.opt_state[0].mu)),
    }
    trainer.train()
    for step in range(EMA_STEPS):
        nnx_ema_step(trainer, optimizer, *batch(step, EMA_BATCH))
    trainer.eval()
    average, weights = trainer.average, trainer.model
    averages, params = nnx.state(average, EMAParam), nnx.state(weights, nnx.Param)
    result["average_is_weights"] = largest_difference(averages, params) == 0
    result["stats_equal"] = bool(jnp.array_equal(average.norm.mean[...], weights.norm.mean[...]))
    result["stats_shared"] = average.norm.mean is weights.norm.mean
    for label, network in [("weights", weights), ("average", average)]:
        logits = network(x_test)
        result[label] = (float(cross_entropy(logits, y_test)), float((logits.argmax(1) == y_test).mean()))
    return result


def kinds(state):
    return sorted({type(v).__name__ for v in jax.tree.leaves(state, is_leaf=is_variable)})


class Holder(nnx.Module):
    """A model and its nnx.EMA in one object."""

    def __init__(self, model, ema):
        self.model, self.ema = model, ema


def builtin_ema():
    model = NNXMLP(nnx.Rngs(0), norm=True)
    default = kinds(nnx.EMA(model, decay=EMA_DECAY).params)
    builtin = nnx.EMA(model, decay=EMA_DECAY, only=nnx.Param)
    optimizer = nnx.Optimizer(Holder(model, builtin), optax.adam(LEARNING_RATE), wrt=nnx.Param)
    return default, kinds(builtin.params), sorted(nnx.to_pure_dict(optimizer.opt_state[0].mu))


def mean_size(tree):
    return float(np.mean([jnp.abs(leaf).mean() for leaf in jax.tree.leaves(tree)]))


def optax_ema():
    """optax.ema chained after Adam: an average of updates that replaces them."""
    plain = linen_state(optax.adam(LEARNING_RATE))
    smoothed = linen_state(optax.chain(optax.adam(LEARNING_RATE), optax.ema(EMA_DECAY)))
    for step in range(3):
        before_last = smoothed.params
        plain, _ = linen_step(plain, *batch(step))
        smoothed, _ = linen_step(smoothed, *batch(step))
    ema_state = smoothed.opt_state[1]
    last_step = jax.tree.map(lambda new, old: new - old, smoothed.params, before_last)
    debiased = jax.tree.map(lambda average: average / (1 - EMA_DECAY**3), ema_state.ema)  # debias=True
    return {
        "step_vs_average": largest_difference(last_step, debiased),
        "state": (type(ema_state).__name__, ema_state._fields),
        "weights_size": mean_size(smoothed.params),
        "average_size": mean_size(ema_state.ema),
        "same_as_plain": largest_difference(smoothed.params, plain.params) == 0,
    }


# -- The exercise --------------------------------------------------------------------------------------------


def accumulate_with_schedule():
    """MultiSteps around inject_hyperparams(adam) with the schedule: which count does the schedule read?"""
    tx = optax.MultiSteps(
        optax.inject_hyperparams(optax.adam)(learning_rate=schedule), every_k_schedule=NUM_MICRO
    )
    model = NNXMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    for step in range(ACCUMULATED_STEPS):
        for x_micro, y_micro in micro_batches(*batch(step)):
            nnx_step(model, optimizer, x_micro, y_micro)
    inner = optimizer.opt_state.inner_opt_state  # the state of inject_hyperparams
    return (
        int(optimizer.step[...]),
        int(inner.hyperparams_states["learning_rate"].count[...]),
        float(inner.hyperparams["learning_rate"][...]),
    )


# -- The program ---------------------------------------------------------------------------------------------


def print_accumulation_table(rows, counter):
    print(f"micro-batch  mini_step  gradient_step  Adam count  {counter}  weights moved  acc_grads = 0")
    for i, (mini, gradient, count, calls, moved, zero) in enumerate(rows[:NUM_MICRO]):
        print(
            f"{i + 1:11}  {mini:9}  {gradient:13}  {count:10}  {calls:{len(counter)}}  {moved!s:13}  {zero}"
        )
    mini, gradient, count, calls, _, _ = rows[-1]
    print(f"after {len(rows)} micro-batches: gradient_step {gradient}  Adam count {count}  {counter} {calls}")


def main():
    print("== Initial weights ==")
    torch.manual_seed(0)
    print("PyTorch dense1 kernel, first row:", TorchMLP().dense1.weight.detach().T[0, :3].numpy().round(4))
    params = linen_module.init(jax.random.key(0), jnp.zeros((1, IN_FEATURES)))["params"]
    print("Linen dense1 kernel, first row:", np.asarray(params["dense1"]["kernel"][0, :3]).round(4))
    print("NNX dense1 kernel, first row:", np.asarray(NNXMLP(nnx.Rngs(0)).dense1.kernel[0, :3]).round(4))

    print("== Gradient accumulation: PyTorch ==")
    result = accumulate_torch()
    print(f"max |accumulated - whole-batch| gradient: {result['grad_difference']:.1e}")
    print(f"max |accumulated - whole-batch| parameter after 3 steps: {result['param_difference']:.1e}")
    print("Adam's step count:", result["adam_steps"])
    print("bytes of .grad held between micro-batches:", result["held"])
    print("bytes of the parameters:", result["param_bytes"])
    print(".grad after zero_grad():", result["grads_after_zero_grad"])
    torch_acc = result["param_difference"]
    norm_difference = accumulate_torch(norm=True, steps=1)["grad_difference"]
    print(f"with BatchNorm, max |accumulated - whole-batch| gradient: {norm_difference:.1e}")

    for name, result, counter in [
        ("Linen", accumulate_linen(), "TrainState.step"),
        ("NNX", accumulate_nnx(), "optimizer.step"),
    ]:
        print(f"== Gradient accumulation: {name} ==")
        print("\n".join(result["tree"]))
        print_accumulation_table(result["rows"], counter)
        if "mean_difference" in result:
            label = "max |acc_grads after 3 micro-batches - mean of their gradients|:"
            print(f"{label} {result['mean_difference']:.1e}")
        print(f"max |accumulated - whole-batch| parameter after 3 steps: {result['param_difference']:.1e}")
        print("bytes of acc_grads:", result["acc_bytes"], " of the parameters:", result["param_bytes"])
        print(
            "bytes of opt_state: Adam alone",
            result["adam_bytes"],
            " MultiSteps(Adam)",
            result["multisteps_bytes"],
        )
        assert result["param_difference"] < TOLERANCE
    assert torch_acc < TOLERANCE
    print(f"accumulated equals whole batch within {TOLERANCE:.0e} in all three: True")

    print("== Learning-rate schedules ==")
    torch_model, torch_optimizer, scheduler = torch_training()
    torch_rates = torch_train(torch_model, torch_optimizer, scheduler, range(NUM_STEPS))
    print("PyTorch rates used:", rates_text(torch_rates))
    print("scheduler.state_dict():", scheduler.state_dict())
    group = torch_optimizer.param_groups[0]
    print(f"PyTorch after 10 steps, param_groups[0]: lr {group['lr']:.6f}, initial_lr {group['initial_lr']}")
    linen_scheduled, linen_rates = linen_train(linen_state(scheduled_adam), range(NUM_STEPS))
    print("Linen opt_state:", [type(part).__name__ for part in linen_scheduled.opt_state])
    print("\n".join(tree_lines(linen_state(scheduled_adam).opt_state)))
    print("Linen rates used:", rates_text(linen_rates))
    adam_state, schedule_state = linen_scheduled.opt_state
    print("Linen Adam count:", int(adam_state.count), " schedule count:", int(schedule_state.count))
    nnx_scheduled, nnx_scheduled_opt = nnx_training()
    print("NNX opt_state:", type(nnx_scheduled_opt.opt_state).__name__)
    print("\n".join(tree_lines(nnx.to_pure_dict(nnx.state(nnx_scheduled_opt)))))
    nnx_rates = nnx_train(nnx_scheduled, nnx_scheduled_opt, range(NUM_STEPS))
    print("NNX rates used:", rates_text(nnx_rates))
    count, steps = nnx_scheduled_opt.opt_state.count[...], nnx_scheduled_opt.step[...]
    print("NNX inject_hyperparams count:", int(count), " optimizer.step:", int(steps))
    rate = float(nnx_scheduled_opt.opt_state.hyperparams["learning_rate"][...])
    print(f"NNX after 10 steps, hyperparams['learning_rate']: {rate:.6f}")
    torch_vs_optax = max(abs(a - b) for a, b in zip(torch_rates * 2, linen_rates + nnx_rates, strict=True))
    linen_vs_nnx = max(abs(a - b) for a, b in zip(linen_rates, nnx_rates, strict=True))
    print(f"max |PyTorch - Optax| rate: {torch_vs_optax:.1e}")
    print(f"max |Linen - NNX| rate: {linen_vs_nnx:.1e}")

    print("== Changing the rate by hand ==")
    torch.manual_seed(0)
    manual = TorchMLP()
    manual_opt = torch.optim.Adam(manual.parameters(), lr=LEARNING_RATE)
    manual_opt.param_groups[0]["lr"] = 0.001
    before = torch_parameters(manual)
    torch_loss(manual, *torch_tensors(*batch(0))).backward()
    manual_opt.step()
    change = largest_difference(before, torch_parameters(manual))
    print(f"PyTorch, lr written 0.001: largest change of a weight {change:.6f}")

    constant_tx = optax.inject_hyperparams(optax.adam)(learning_rate=LEARNING_RATE)
    state = linen_state(constant_tx)
    hyperparams = {**state.opt_state.hyperparams, "learning_rate": jnp.asarray(0.001)}
    state = state.replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))
    before = state.params
    state, _ = linen_step(state, *batch(0))
    print(
        f"Linen, lr written 0.001: largest change of a weight {largest_difference(before, state.params):.6f}"
    )

    for label, tx in [("constant", constant_tx), ("scheduled", scheduled_tx)]:
        model = NNXMLP(nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        optimizer.opt_state.hyperparams["learning_rate"][...] = 0.001
        before = nnx.clone(nnx.state(model, nnx.Param))
        nnx_step(model, optimizer, *batch(0))
        used = float(optimizer.opt_state.hyperparams["learning_rate"][...])
        change = largest_difference(before, nnx.state(model, nnx.Param))
        print(f"NNX {label}, lr written 0.001: rate after the step {used:.6f}, ", end="")
        print(f"largest change of a weight {change:.6f}")

    print("== Resuming ==")
    for label, lr_now, last_lr, rates, same_rates, same_weights in torch_resume(torch_model, torch_rates):
        print(
            f"PyTorch restored {label}: lr now {lr_now:.5f}, get_last_lr() {last_lr:.5f}, "
            f"rates {rates_text(rates)}, same rates {same_rates}, same weights {same_weights}"
        )
    for label, rates, same_rates, same_weights in linen_resume(linen_scheduled, linen_rates):
        print(f"Linen restored {label}: rates {rates_text(rates)}, ", end="")
        print(f"same rates {same_rates}, same weights {same_weights}")
    for label, rates, same_rates, same_weights in nnx_resume(nnx_scheduled, nnx_rates):
        print(f"NNX restored {label}: rates {rates_text(rates)}, ", end="")
        print(f"same rates {same_rates}, same weights {same_weights}")

    print(f"== EMA of the weights: decay {EMA_DECAY}, {EMA_STEPS} steps of {EMA_BATCH}, ", end="")
    print(f"lr {EMA_LEARNING_RATE} ==")
    result = torch_ema()
    print("PyTorch n_averaged before training:", result["n_averaged_before"])
    print("PyTorch after the first update_parameters(), average == weights:", result["first_update_copies"])
    print("PyTorch n_averaged after training:", result["n_averaged_after"])
    print("PyTorch average == weights now:", result["average_is_weights"])
    print("PyTorch running_mean == the model's, default use_buffers=False:", result["buffers_copied"])
    print("PyTorch running_mean == the model's, use_buffers=True:", result["use_buffers_copied"])
    print(
        "PyTorch average's parameters:", result["parameter_types"], "requires_grad", result["requires_grad"]
    )
    results = {"PyTorch": result}
    result = results["Linen"] = linen_ema()
    print("Linen arrays: params {}  ema_params {}  Adam's mu {}  Adam's nu {}".format(*result["arrays"]))
    print("Linen average == weights now:", result["average_is_weights"])
    result = results["NNX"] = nnx_ema()
    print("NNX kind of the averaged kernel:", result["kernel_type"])
    print("NNX Adam's moments cover:", result["moments"])
    print("NNX average == weights now:", result["average_is_weights"])
    print(
        "NNX BatchNorm mean == the model's:",
        result["stats_equal"],
        " the same Variable:",
        result["stats_shared"],
    )
    for name, result in results.items():
        for label in ("weights", "average"):
            loss, accuracy = result[label]
            print(f"{name} test, {label}: loss {loss:.4f}, accuracy {accuracy:.3f}")
        print(f"{name} average has the lower test loss:", result["average"][0] < result["weights"][0])
    default, only_params, moments = builtin_ema()
    print("nnx.EMA(model) keeps:", default)
    print("nnx.EMA(model, only=nnx.Param) keeps:", only_params)
    print("an optimizer for a module holding model and nnx.EMA keeps moments for:", moments)
    result = optax_ema()
    print("optax.ema's state:", *result["state"])
    sizes = result["weights_size"], result["average_size"]
    print("mean |value|: weights {:.4f}, optax.ema's average {:.4f}".format(*sizes))
    print(f"max |step 3 taken - debiased average|: {result['step_vs_average']:.1e}")
    print("weights after 3 steps equal plain Adam's:", result["same_as_plain"])

    print("== Exercise: MultiSteps around a scheduled optimizer ==")
    steps, count, rate = accumulate_with_schedule()
    print("optimizer.step:", steps)
    print("schedule count:", count)
    print(f"rate of the last real step: {rate:.6f}, schedule(2) = {float(schedule(2)):.6f}")


if __name__ == "__main__":
    main()
