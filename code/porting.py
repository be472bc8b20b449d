"""Port a small PyTorch CNN to Flax Linen and Flax NNX, and check that all three compute the same thing.

The network: Conv2d(1, 4, 3) -> BatchNorm2d(4) -> ReLU -> flatten -> Linear(144, 3), on 1x8x8 images.
Run it with `python code/porting.py`; every check prints its largest absolute difference.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import linen as nn
from flax import nnx

torch.set_num_threads(1)  # one summation order on every run, so the printed differences repeat exactly

BATCH, CHANNELS, SIZE, FILTERS, CLASSES = 16, 1, 8, 4, 3
OUT = SIZE - 2  # a 3x3 convolution without padding: 8x8 -> 6x6
FEATURES = FILTERS * OUT * OUT  # 144 inputs to the Linear layer
STEPS, LEARNING_RATE, MOMENTUM = 30, 0.02, 0.9
TOLERANCE = 1e-5


# -- Data: the same numbers for the three frameworks -----------------------------------------------


def make_data(seed=0, batches=STEPS):
    """Images with a bright vertical band on the left, middle or right; the label says which."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=(batches, BATCH))
    images = rng.normal(size=(batches, BATCH, CHANNELS, SIZE, SIZE)).astype(np.float32)
    for band in range(CLASSES):
        columns = slice(1 + 2 * band, 3 + 2 * band)
        images[..., columns] += 1.0 * (labels == band)[..., None, None, None]
    return images, labels.astype(np.int32)  # images are NCHW, as PyTorch wants them


def nchw_to_nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


# -- The model, three times ------------------------------------------------------------------------


class TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(CHANNELS, FILTERS, kernel_size=3)
        self.bn = torch.nn.BatchNorm2d(FILTERS)  # momentum=0.1, eps=1e-5
        self.fc = torch.nn.Linear(FEATURES, CLASSES)

    def forward(self, x):  # x: (N, C, H, W)
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.flatten(1))  # flattens in (C, H, W) order


class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):  # x: (N, H, W, C)
        x = nn.Conv(FILTERS, (3, 3), padding="VALID", name="conv")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name="bn")(x)
        x = nn.relu(x)
        return nn.Dense(CLASSES, name="fc")(x.reshape(x.shape[0], -1))  # flattens in (H, W, C) order


class NNXCNN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(CHANNELS, FILTERS, (3, 3), padding="VALID", rngs=rngs)
        self.bn = nnx.BatchNorm(FILTERS, momentum=0.9, epsilon=1e-5, rngs=rngs)
        self.fc = nnx.Linear(FEATURES, CLASSES, rngs=rngs)

    def __call__(self, x):  # x: (N, H, W, C); model.train() / model.eval() switch the BatchNorm
        x = nnx.relu(self.bn(self.conv(x)))
        return self.fc(x.reshape(x.shape[0], -1))  # flattens in (H, W, C) order


def default(function, name):
    """The default value of a parameter, from the function's (or class's) signature."""
    return inspect.signature(function).parameters[name].default


def defaults():
    """The defaults that differ between PyTorch and Flax, read from the installed libraries' signatures.

    {what: (PyTorch, Flax Linen, Flax NNX)}; Flax's optimizer is optax's in both.
    """
    return {
        "conv padding": (
            default(torch.nn.Conv2d, "padding"),
            default(nn.Conv, "padding"),
            default(nnx.Conv.__init__, "padding"),
        ),
        "batchnorm momentum": (
            default(torch.nn.BatchNorm2d, "momentum"),
            default(nn.BatchNorm, "momentum"),
            default(nnx.BatchNorm.__init__, "momentum"),
        ),
        "batchnorm epsilon": (
            default(torch.nn.BatchNorm2d, "eps"),
            default(nn.BatchNorm, "epsilon"),
            default(nnx.BatchNorm.__init__, "epsilon"),
        ),
        "layernorm epsilon": (
            default(torch.nn.LayerNorm, "eps"),
            default(nn.LayerNorm, "epsilon"),
            default(nnx.LayerNorm.__init__, "epsilon"),
        ),
        "gelu approximate": (
            default(torch.nn.GELU, "approximate"),
            default(nn.gelu, "approximate"),
            default(nnx.gelu, "approximate"),
        ),
        "adamw weight decay": (
            default(torch.optim.AdamW, "weight_decay"),
            default(optax.adamw, "weight_decay"),
            default(optax.adamw, "weight_decay"),
        ),
    }


def default_gaps(seed=7):
    """{layer: (max |PyTorch - Flax| with each library's default, with the two set equal)}."""
    rng = np.random.default_rng(seed)
    activations = rng.normal(size=(4, 16)).astype(np.float32)
    parameters, gradients = (rng.normal(size=16).astype(np.float32) for _ in range(2))

    def layernorm_gap(flax_epsilon):
        torch_out = torch.nn.LayerNorm(16)(torch.from_numpy(activations)).detach().numpy()  # eps=1e-5
        identity = {"params": {"scale": jnp.ones(16), "bias": jnp.zeros(16)}}  # PyTorch's initial weights
        return max_diff(torch_out, nn.LayerNorm(epsilon=flax_epsilon).apply(identity, activations))

    def gelu_gap(approximate):
        torch_out = torch.nn.functional.gelu(torch.from_numpy(activations)).numpy()  # exact
        return max_diff(torch_out, nn.gelu(activations, approximate=approximate))

    def adamw_gap(optax_weight_decay):
        weight = torch.nn.Parameter(torch.from_numpy(parameters.copy()))
        torch_adamw = torch.optim.AdamW([weight], lr=0.1)  # weight_decay=1e-2
        weight.grad = torch.from_numpy(gradients.copy())
        torch_adamw.step()
        tx = optax.adamw(0.1, weight_decay=optax_weight_decay)
        start = jnp.asarray(parameters)
        updates, _ = tx.update(jnp.asarray(gradients), tx.init(start), start)
        return max_diff(weight.detach().numpy(), optax.apply_updates(start, updates))

    return {
        "layernorm": (layernorm_gap(1e-6), layernorm_gap(1e-5)),
        "gelu": (gelu_gap(True), gelu_gap(False)),
        "adamw": (adamw_gap(1e-4), adamw_gap(1e-2)),
    }


# -- The conversion --------------------------------------------------------------------------------


def linear_kernel(weight):
    """torch Linear weight (out, C*H*W), inputs in (C, H, W) order -> Flax kernel (H*W*C, out)."""
    return weight.reshape(CLASSES, FILTERS, OUT, OUT).transpose(2, 3, 1, 0).reshape(FEATURES, CLASSES)


def torch_to_flax(tensors):
    """A PyTorch state_dict (or its gradients, same names) -> Linen's {'params', 'batch_stats'}."""
    t = {name: np.asarray(value.detach()) for name, value in tensors.items()}
    variables = {
        "params": {
            "conv": {"kernel": t["conv.weight"].transpose(2, 3, 1, 0), "bias": t["conv.bias"]},
            "bn": {"scale": t["bn.weight"], "bias": t["bn.bias"]},
            "fc": {"kernel": linear_kernel(t["fc.weight"]), "bias": t["fc.bias"]},
        }
    }
    if "bn.running_mean" in t:
        variables["batch_stats"] = {"bn": {"mean": t["bn.running_mean"], "var": t["bn.running_var"]}}
    return jax.tree.map(jnp.asarray, variables)


def load_into_nnx(model, variables):
    """Write Linen-shaped variables into an NNX model: the attribute names are the same."""
    for collection in variables.values():
        for layer, values in collection.items():
            for name, value in values.items():
                getattr(getattr(model, layer), name)[...] = value


# -- One training step in each framework -----------------------------------------------------------


def torch_loss_fn(model, x, y):
    return torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y).long())


def linen_loss_fn(params, batch_stats, x, y):
    logits, updates = LinenCNN().apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, (logits, updates["batch_stats"])


def nnx_loss_fn(model, x, y):
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


linen_grad_fn = jax.jit(jax.value_and_grad(linen_loss_fn, has_aux=True))
nnx_grad_fn = nnx.jit(nnx.value_and_grad(nnx_loss_fn, has_aux=True))


def make_models(seed=0):
    """PyTorch's initial weights, copied into Linen variables and into an NNX model."""
    torch.manual_seed(seed)
    torch_model = TorchCNN()
    variables = torch_to_flax(torch_model.state_dict())
    nnx_model = NNXCNN(nnx.Rngs(seed))
    load_into_nnx(nnx_model, variables)
    return torch_model, variables, nnx_model


def max_diff(a, b):
    """Largest absolute difference over two pytrees with the same structure."""
    return max(jax.tree.leaves(jax.tree.map(lambda u, v: float(jnp.max(jnp.abs(u - v))), a, b)))


def equivalence_checks():
    """Every check of the page: name -> largest absolute difference (PyTorch vs Linen, PyTorch vs NNX)."""
    images, labels = make_data()
    x, y = images[0], labels[0]
    x_nhwc = nchw_to_nhwc(x)
    torch_model, variables, nnx_model = make_models()
    checks = {}

    # Forward pass, training mode (batch statistics) and evaluation mode (running statistics).
    with torch.no_grad():
        torch_model.eval()
        torch_eval = torch_model(torch.from_numpy(x)).numpy()
        torch_model.train()
    linen_eval = LinenCNN().apply(variables, x_nhwc, train=False)
    nnx_model.eval()
    nnx_eval = nnx_model(x_nhwc)
    nnx_model.train()
    checks["eval-mode outputs"] = (max_diff(torch_eval, linen_eval), max_diff(torch_eval, nnx_eval))

    # Training mode: outputs, loss and gradients, then one SGD step with momentum.
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    torch_opt.zero_grad()
    logits = torch_model(torch.from_numpy(x))
    torch_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y).long())
    torch_loss.backward()
    grads = {name: p.grad.clone() for name, p in torch_model.named_parameters()}
    torch_opt.step()

    params, batch_stats = variables["params"], variables["batch_stats"]
    (linen_loss, (linen_logits, linen_stats)), linen_grads = linen_grad_fn(params, batch_stats, x_nhwc, y)
    tx = optax.sgd(LEARNING_RATE, momentum=MOMENTUM)
    updates, _ = tx.update(linen_grads, tx.init(params), params)
    linen_params = optax.apply_updates(params, updates)

    optimizer = nnx.Optimizer(nnx_model, optax.sgd(LEARNING_RATE, momentum=MOMENTUM), wrt=nnx.Param)
    (nnx_loss, nnx_logits), nnx_grads = nnx_grad_fn(nnx_model, x_nhwc, y)
    optimizer.update(nnx_model, nnx_grads)

    t_logits = logits.detach().numpy()
    checks["train-mode outputs"] = (max_diff(t_logits, linen_logits), max_diff(t_logits, nnx_logits))
    t_loss = torch_loss.item()
    checks["loss"] = (abs(t_loss - float(linen_loss)), abs(t_loss - float(nnx_loss)))
    t_grads = torch_to_flax(grads)["params"]
    nnx_grads = nnx.to_pure_dict(nnx_grads)
    checks["gradients"] = (max_diff(t_grads, linen_grads), max_diff(t_grads, nnx_grads))
    t_after = torch_to_flax(torch_model.state_dict())
    nnx_after = nnx.to_pure_dict(nnx.state(nnx_model, nnx.Param))
    checks["parameters after one step"] = (
        max_diff(t_after["params"], linen_params),
        max_diff(t_after["params"], nnx_after),
    )

    # Running statistics: the mean matches as it is; PyTorch's variance is updated with the unbiased batch
    # variance, so convert its update to the biased one before comparing.
    n = BATCH * OUT * OUT
    t_mean, t_var = t_after["batch_stats"]["bn"]["mean"], t_after["batch_stats"]["bn"]["var"]
    old_var = batch_stats["bn"]["var"]
    t_var_biased = 0.9 * old_var + (t_var - 0.9 * old_var) * (n - 1) / n
    nnx_stats = nnx.to_pure_dict(nnx.state(nnx_model, nnx.BatchStat))
    checks["running mean after one step"] = (
        max_diff(t_mean, linen_stats["bn"]["mean"]),
        max_diff(t_mean, nnx_stats["bn"]["mean"]),
    )
    checks["running var after one step (converted)"] = (
        max_diff(t_var_biased, linen_stats["bn"]["var"]),
        max_diff(t_var_biased, nnx_stats["bn"]["var"]),
    )
    checks["running var after one step (as stored)"] = (
        max_diff(t_var, linen_stats["bn"]["var"]),
        max_diff(t_var, nnx_stats["bn"]["var"]),
    )
    return checks


def running_variance_ratio():
    """One training-mode forward pass in PyTorch and in Linen from running var 1: the batch parts' ratio."""
    images, _ = make_data()
    x = images[0]
    torch_model, variables, _ = make_models()
    with torch.no_grad():
        torch_model(torch.from_numpy(x))
    _, updates = LinenCNN().apply(variables, nchw_to_nhwc(x), train=True, mutable=["batch_stats"])
    torch_var = torch_model.bn.running_var.numpy().astype(np.float64)
    linen_var = np.asarray(updates["batch_stats"]["bn"]["var"], dtype=np.float64)
    # new = 0.9 * old + 0.1 * batch variance, with old = 1: recover each batch variance
    return torch_var, linen_var, (torch_var - 0.9) / (linen_var - 0.9)


# -- Training all three ----------------------------------------------------------------------------


def train_all(steps=STEPS):
    """Train the three copies on the same batches with SGD + momentum.

    Returns the three loss curves, and PyTorch vs Linen in evaluation mode after training (the largest
    difference and the largest output).
    """
    images, labels = make_data(batches=steps)
    torch_model, variables, nnx_model = make_models()
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    tx = optax.sgd(LEARNING_RATE, momentum=MOMENTUM)
    params, batch_stats = variables["params"], variables["batch_stats"]
    opt_state = tx.init(params)

    @jax.jit
    def linen_step(params, batch_stats, opt_state, x, y):
        (loss, (_, batch_stats)), grads = linen_grad_fn(params, batch_stats, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    optimizer = nnx.Optimizer(nnx_model, optax.sgd(LEARNING_RATE, momentum=MOMENTUM), wrt=nnx.Param)

    @nnx.jit
    def nnx_step(model, optimizer, x, y):
        (loss, _), grads = nnx_grad_fn(model, x, y)
        optimizer.update(model, grads)
        return loss

    curves = {"PyTorch": [], "Linen": [], "NNX": []}
    for x, y in zip(images, labels, strict=True):
        torch_opt.zero_grad()
        loss = torch_loss_fn(torch_model, x, y)
        loss.backward()
        torch_opt.step()
        curves["PyTorch"].append(loss.item())

        params, batch_stats, opt_state, loss = linen_step(params, batch_stats, opt_state, nchw_to_nhwc(x), y)
        curves["Linen"].append(float(loss))
        curves["NNX"].append(float(nnx_step(nnx_model, optimizer, nchw_to_nhwc(x), y)))

    # Evaluation mode after training: the running variances followed two conventions.
    torch_model.eval()
    with torch.no_grad():
        torch_eval = torch_model(torch.from_numpy(images[0])).numpy()
    trained = {"params": params, "batch_stats": batch_stats}
    linen_eval = LinenCNN().apply(trained, nchw_to_nhwc(images[0]), train=False)
    eval_gap = max_diff(torch_eval, linen_eval), float(np.abs(torch_eval).max())
    return {name: np.array(curve) for name, curve in curves.items()}, eval_gap


def main():
    print("== Defaults")
    for name, (pytorch, linen, nnx_default) in defaults().items():
        print(f"{name}: PyTorch {pytorch!r}, Linen {linen!r}, NNX {nnx_default!r}")
    for name, (with_defaults, set_equal) in default_gaps().items():
        print(f"{name} max |PyTorch - Flax|: defaults {with_defaults:.1e}, set equal {set_equal:.1e}")

    print("== Shapes")
    torch_model, variables, _ = make_models()
    params = variables["params"]
    print("Linear weight", tuple(torch_model.fc.weight.shape), "-> kernel", params["fc"]["kernel"].shape)
    print("Conv2d weight", tuple(torch_model.conv.weight.shape), "-> kernel", params["conv"]["kernel"].shape)
    images, _ = make_data()
    print("input", images[0].shape, "-> NHWC", nchw_to_nhwc(images[0]).shape)

    print("== Flatten order")
    x = nchw_to_nhwc(images[0])
    naive = jax.tree.map(lambda a: a, variables)
    naive["params"]["fc"]["kernel"] = jnp.asarray(torch_model.fc.weight.detach().numpy().T)
    torch_model.eval()
    linen = LinenCNN()
    with torch.no_grad():
        reference = torch_model(torch.from_numpy(images[0])).numpy()
    print(f"weight.T only: max difference {max_diff(reference, linen.apply(naive, x, train=False)):.1e}")
    print(
        f"weight permuted: max difference {max_diff(reference, linen.apply(variables, x, train=False)):.1e}"
    )

    print("== Running variance")
    torch_var, linen_var, ratio = running_variance_ratio()
    n = BATCH * OUT * OUT
    print("PyTorch running_var:", np.array2string(torch_var, precision=4))
    print("Flax var:", np.array2string(linen_var, precision=4))
    print("ratio of the batch parts:", np.array2string(ratio, precision=5))
    print(f"n/(n-1) with n = {n}: {n / (n - 1):.5f}")

    print("== Equivalence")
    checks = equivalence_checks()
    largest = 0.0
    for name, (linen_d, nnx_d) in checks.items():
        print(f"{name}: Linen {linen_d:.1e}, NNX {nnx_d:.1e}")
        if "as stored" not in name:
            largest = max(largest, linen_d, nnx_d)
    print(f"largest difference over all checks: {largest:.1e} (tolerance {TOLERANCE:.0e})")
    print("all within tolerance:", largest < TOLERANCE)

    print("== Training")
    curves, (eval_gap, eval_largest) = train_all()
    for name, curve in curves.items():
        print(f"{name} loss: first {curve[0]:.4f}, final {curve[-1]:.4f}")
    gap = max(float(np.max(np.abs(curves["PyTorch"] - curves[name]))) for name in ("Linen", "NNX"))
    print(f"largest difference between the curves: {gap:.1e}")
    print(f"eval-mode outputs after training, PyTorch vs Linen: {eval_gap:.1e}")
    print(f"largest eval-mode output: {eval_largest:.1f}")


if __name__ == "__main__":
    main()
