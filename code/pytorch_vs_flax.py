"""PyTorch and Flax, side by side: the complete program behind docs/pytorch-vs-flax.md.

One small MLP, defined, initialised and trained in PyTorch and in Flax Linen from the same initial
weights on the same data, so that every step of one framework can be set beside its counterpart and
their numbers compared.

Run it with ``python code/pytorch_vs_flax.py``; tests/test_pytorch_vs_flax.py checks what it prints.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import linen as nn

# Inputs are 12x12 single-channel images. The MLP flattens each one into 12 * 12 * 1 = 144 features,
# maps them to a hidden layer of 12 units and then to a single output (a regression target).
# With one channel, flattening PyTorch's NCHW (N, 1, 12, 12) and Flax's NHWC (N, 12, 12, 1) layouts
# gives the features in the same order, so the two models see exactly the same numbers.
HEIGHT, WIDTH, CHANNELS = 12, 12, 1
IN_FEATURES, HIDDEN, OUT_FEATURES = HEIGHT * WIDTH * CHANNELS, 12, 1
BATCH, LEARNING_RATE, STEPS = 32, 0.1, 5


def make_data(seed=0):
    """Seeded synthetic data as NumPy arrays, shared by both frameworks.

    Images are ``(BATCH, 12, 12, 1)`` (NHWC); the target of an image is a fixed linear function
    of its pixels plus a little noise.

    >>> images, targets = make_data()
    >>> images.shape, targets.shape
    ((32, 12, 12, 1), (32, 1))
    """
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((BATCH, HEIGHT, WIDTH, CHANNELS), dtype=np.float32)
    teacher = rng.standard_normal((IN_FEATURES, OUT_FEATURES), dtype=np.float32) / np.sqrt(IN_FEATURES)
    noise = 0.1 * rng.standard_normal((BATCH, OUT_FEATURES), dtype=np.float32)
    targets = images.reshape(BATCH, -1) @ teacher + noise
    return images, targets


# -- PyTorch -------------------------------------------------------------------------------------


class TorchMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense1 = torch.nn.Linear(IN_FEATURES, HIDDEN)
        self.dense2 = torch.nn.Linear(HIDDEN, OUT_FEATURES)

    def forward(self, x):
        x = torch.flatten(x, start_dim=1)  # (N, 1, 12, 12) -> (N, 144)
        x = torch.relu(self.dense1(x))
        return self.dense2(x)


def torch_train(model, optimizer, criterion, images, targets, steps=STEPS):
    """Train in place on the full batch; return the loss before each step."""
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()  # .grad accumulates: clear it
        loss = criterion(model(images), targets)  # forward: the parameters are inside `model`
        loss.backward()  # gradients land in each parameter's .grad
        optimizer.step()  # parameters are updated in place
        losses.append(loss.item())
    return losses


# -- Flax Linen, two styles of the same module ---------------------------------------------------


class SetupMLP(nn.Module):
    """Submodules declared in ``setup``, as in a PyTorch ``__init__``."""

    def setup(self):
        self.dense1 = nn.Dense(HIDDEN)
        self.dense2 = nn.Dense(OUT_FEATURES)

    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))  # (N, 12, 12, 1) -> (N, 144)
        x = nn.relu(self.dense1(x))
        return self.dense2(x)


class CompactMLP(nn.Module):
    """Submodules declared inline with ``@nn.compact``; the names make the variables match SetupMLP's."""

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(HIDDEN, name="dense1")(x))
        return nn.Dense(OUT_FEATURES, name="dense2")(x)


def params_from_torch(torch_model):
    """Copy a TorchMLP's weights into a Linen params dict: a Dense kernel is the transposed weight."""

    def dense(layer):
        return {
            "kernel": jnp.asarray(layer.weight.detach().numpy().T),  # (out, in) -> (in, out)
            "bias": jnp.asarray(layer.bias.detach().numpy()),
        }

    return {"dense1": dense(torch_model.dense1), "dense2": dense(torch_model.dense2)}


def make_loss_fn(model):
    """The Flax loss: a function of the parameters (first, to differentiate) and the data."""

    def loss_fn(params, images, targets):
        predictions = model.apply({"params": params}, images)  # forward: the parameters are an input
        return optax.squared_error(predictions, targets).mean()  # = torch.nn.MSELoss()

    return loss_fn


def make_train_step(loss_fn, tx):
    """One jitted SGD step: state in, new state out."""

    @jax.jit
    def train_step(params, opt_state, images, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, images, targets)  # gradients are returned
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)  # new parameters are returned, not written
        return params, opt_state, loss

    return train_step


def flax_train(train_step, params, opt_state, images, targets, steps=STEPS):
    """Run ``steps`` train steps; return the final params and optimizer state, and each step's loss."""
    losses = []
    for _ in range(steps):
        params, opt_state, loss = train_step(params, opt_state, images, targets)
        losses.append(float(loss))
    return params, opt_state, losses


def max_diff(torch_tensor, jax_array):
    """Largest absolute difference between a PyTorch tensor and a JAX array of the same shape."""
    return float(np.abs(torch_tensor.detach().numpy() - np.asarray(jax_array)).max())


def shapes(tree):
    """Replace every array in a pytree by its shape."""
    return jax.tree.map(jnp.shape, tree)


def is_decreasing(values):
    """True when every value is smaller than the one before.

    >>> is_decreasing([3.0, 2.0, 1.5]), is_decreasing([3.0, 3.0])
    (True, False)
    """
    return all(b < a for a, b in itertools.pairwise(values))


def main():
    images, targets = make_data()
    images_torch = torch.from_numpy(images).permute(0, 3, 1, 2)  # NHWC -> NCHW for PyTorch
    targets_torch = torch.from_numpy(targets)
    print("== Data ==")
    print("flax images (NHWC):", images.shape, "torch images (NCHW):", tuple(images_torch.shape))

    print("== Initialization ==")
    torch.manual_seed(0)
    torch_model = TorchMLP()
    print("torch state_dict:", {name: tuple(t.shape) for name, t in torch_model.state_dict().items()})
    model = SetupMLP()
    variables = model.init(jax.random.key(0), images)
    print("flax init variables:", shapes(variables))
    compact_variables = CompactMLP().init(jax.random.key(0), images)
    same = jax.tree.all(jax.tree.map(jnp.array_equal, variables, compact_variables))
    print("setup and compact: same variables from the same key:", same)
    out_setup = SetupMLP().apply(variables, images)
    out_compact = CompactMLP().apply(variables, images)
    print("setup and compact outputs identical:", bool(jnp.array_equal(out_setup, out_compact)))
    weight, kernel = torch_model.dense1.weight, variables["params"]["dense1"]["kernel"]
    print(
        f"torch dense1.weight: std {weight.std():.4f}, max |w| {weight.abs().max():.4f} (bound 1/12 = 0.0833)"
    )
    print(f"torch dense1.bias all zero: {bool((torch_model.dense1.bias == 0).all())}")
    print(f"flax dense1 kernel: std {kernel.std():.4f} (lecun_normal: 1/sqrt(144) = 0.0833)")
    print(f"flax dense1 bias all zero: {bool((variables['params']['dense1']['bias'] == 0).all())}")

    print("== Copy PyTorch's weights into Flax: kernel = weight.T ==")
    params = params_from_torch(torch_model)
    print("copied params:", shapes(params))

    print("== Forward pass ==")
    predictions_torch = torch_model(images_torch)
    predictions = model.apply({"params": params}, images)
    print("output shapes:", tuple(predictions_torch.shape), predictions.shape)
    print(f"max |torch - flax| initial output: {max_diff(predictions_torch, predictions):.1e}")

    print("== Loss ==")
    criterion = torch.nn.MSELoss()  # the class form: build it, then call it
    loss_fn = make_loss_fn(model)
    print(f"torch loss {criterion(predictions_torch, targets_torch).item():.6f}")
    functional = torch.nn.functional.mse_loss(predictions_torch, targets_torch)
    print(
        "torch functional mse_loss equals MSELoss:",
        torch.equal(functional, criterion(predictions_torch, targets_torch)),
    )
    print(f"flax loss {float(loss_fn(params, images, targets)):.6f}")
    print("optax squared_error shape, one per element:", optax.squared_error(predictions, targets).shape)
    logits, labels = jnp.zeros((32, 10)), jnp.zeros(32, dtype=jnp.int32)
    print(
        "optax softmax cross-entropy shape, one per example:",
        optax.softmax_cross_entropy_with_integer_labels(logits, labels).shape,
    )

    print("== Gradients ==")
    torch_model.zero_grad()
    criterion(torch_model(images_torch), targets_torch).backward()
    _, grads = jax.value_and_grad(loss_fn)(params, images, targets)
    print("flax gradient shapes:", shapes(grads))
    grad_diff = max_diff(torch_model.dense1.weight.grad.T, grads["dense1"]["kernel"])
    print(f"max |torch - flax| dense1 gradient (weight.grad.T vs kernel): {grad_diff:.1e}")

    print("== One optimizer step ==")
    optimizer = torch.optim.SGD(torch_model.parameters(), lr=LEARNING_RATE)
    before = torch_model.dense1.weight.detach().clone()
    optimizer.step()
    print("torch weights changed in place:", not torch.equal(before, torch_model.dense1.weight))
    tx = optax.sgd(LEARNING_RATE)
    opt_state = tx.init(params)
    kernel_before = params["dense1"]["kernel"]
    updates, opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    print("flax new params returned:", not jnp.array_equal(kernel_before, new_params["dense1"]["kernel"]))
    print("flax old params untouched:", params["dense1"]["kernel"] is kernel_before)
    params = new_params
    step_diff = max_diff(torch_model.dense1.weight.T, params["dense1"]["kernel"])
    print(f"max |torch - flax| dense1 after the step: {step_diff:.1e}")

    print(f"== Training: {STEPS} more full-batch SGD steps, lr={LEARNING_RATE} ==")
    torch_losses = torch_train(torch_model, optimizer, criterion, images_torch, targets_torch)
    train_step = make_train_step(loss_fn, tx)
    params, opt_state, flax_losses = flax_train(train_step, params, opt_state, images, targets)
    for step, (t, f) in enumerate(zip(torch_losses, flax_losses, strict=True), start=1):
        print(f"step {step}: torch loss {t:.6f}  flax loss {f:.6f}")
    print("torch loss decreasing:", is_decreasing(torch_losses))
    print("flax loss decreasing:", is_decreasing(flax_losses))
    loss_diff = max(abs(t - f) for t, f in zip(torch_losses, flax_losses, strict=True))
    print(f"max |torch - flax| loss over the steps: {loss_diff:.1e}")


if __name__ == "__main__":
    main()
