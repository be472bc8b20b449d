"""Stateful and stateless models: the complete program behind docs/stateful-vs-stateless.md.

PyTorch and Flax NNX modules own their arrays from the moment they are built; a Flax Linen
module owns nothing, and its variables come back from ``init`` as a plain dict. The same holds for
the optimizer state: inside ``torch.optim`` and ``nnx.Optimizer``, returned by ``optax``'s ``init``.

Run it with ``python code/stateful_vs_stateless.py``; tests/test_stateful_vs_stateless.py checks what
it prints.
"""

import jax
import jax.numpy as jnp
import optax
import torch
from flax import linen as nn
from flax import nnx

# The same tiny model in all three APIs: 4 features -> Linear(8) -> BatchNorm -> ReLU -> Linear(2).
# BatchNorm is there because it carries state that is not trained by gradients (running statistics).
IN_FEATURES, HIDDEN, OUT_FEATURES = 4, 8, 2


# -- PyTorch: the module is the state ----------------------------------------------------------


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense1 = torch.nn.Linear(IN_FEATURES, HIDDEN)
        self.norm = torch.nn.BatchNorm1d(HIDDEN)
        self.dense2 = torch.nn.Linear(HIDDEN, OUT_FEATURES)

    def forward(self, x):
        return self.dense2(torch.relu(self.norm(self.dense1(x))))


class WithScratch(torch.nn.Module):
    """A buffer saved in the state_dict, and one registered with persistent=False, which is not."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kept", torch.zeros(2))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)


def torch_shapes(named_tensors):
    """Map names to shapes, for ``state_dict().items()``, ``named_parameters()`` or ``named_buffers()``.

    >>> torch_shapes(torch.nn.Linear(3, 2).named_parameters())
    {'weight': (2, 3), 'bias': (2,)}
    """
    return {name: tuple(tensor.shape) for name, tensor in named_tensors}


# -- Flax Linen: the module is a description, the variables live outside it ---------------------


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(HIDDEN, name="dense1")(x)
        x = nn.BatchNorm(use_running_average=not train, name="norm")(x)
        return nn.Dense(OUT_FEATURES, name="dense2")(nn.relu(x))


def shapes(tree):
    """Replace every array in a pytree (nested dicts of arrays) by its shape.

    >>> shapes({'params': {'kernel': jnp.zeros((3, 2)), 'bias': jnp.zeros(2)}})
    {'params': {'bias': (2,), 'kernel': (3, 2)}}
    """
    return jax.tree.map(jnp.shape, tree)


# -- Flax NNX: the module owns its variables again ----------------------------------------------


class NNXNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.norm = nnx.BatchNorm(HIDDEN, rngs=rngs)
        self.dense2 = nnx.Linear(HIDDEN, OUT_FEATURES, rngs=rngs)

    def __call__(self, x):
        return self.dense2(nnx.relu(self.norm(self.dense1(x))))


def nnx_shapes(model, *filters):
    """Shapes of an NNX model's variables, as a plain nested dict (``filters`` pick a kind)."""
    return shapes(nnx.to_pure_dict(nnx.state(model, *filters)))


def main():
    torch.manual_seed(0)
    x_torch = torch.randn(5, IN_FEATURES)  # a batch of 5 examples with 4 features each
    x = jnp.asarray(x_torch.numpy())  # the same numbers as a JAX array

    print("== Construction ==")
    model = TorchNet()
    print("torch state_dict:", torch_shapes(model.state_dict().items()))
    linen_model = LinenNet()
    print("linen module:", linen_model)
    try:
        print(linen_model.variables)
    except ValueError as error:
        print("module.variables before init:", type(error).__name__, "-", error)
    nnx_model = NNXNet(nnx.Rngs(0))
    kernel = nnx_model.dense1.kernel
    print("nnx kernel right after construction:", type(kernel).__name__, kernel[...].shape, kernel[...].dtype)
    print("  holds a jax.Array:", isinstance(kernel[...], jax.Array))

    print("== Where the variables are ==")
    print("torch parameters:", torch_shapes(model.named_parameters()))
    print("torch buffers:", torch_shapes(model.named_buffers()))
    with_scratch = WithScratch()
    print("buffers of a module with persistent=False:", [name for name, _ in with_scratch.named_buffers()])
    print("  its state_dict:", list(with_scratch.state_dict()))
    variables = linen_model.init(jax.random.key(0), x, train=False)
    print("linen init returns a", type(variables).__name__, "with collections", sorted(variables))
    print("linen variables:", shapes(variables))
    print(
        "linen apply takes the variables and the data; output shape:",
        linen_model.apply(variables, x, train=False).shape,
    )
    print("nnx.Param:", nnx_shapes(nnx_model, nnx.Param))
    print("nnx.BatchStat:", nnx_shapes(nnx_model, nnx.BatchStat))

    print("== A forward pass in training mode ==")
    before = model.norm.running_mean.clone()
    print("torch forward takes only the data; output shape:", tuple(model(x_torch).shape))
    print(
        "torch forward pass changed running_mean in place:", not torch.equal(before, model.norm.running_mean)
    )
    out, updates = linen_model.apply(variables, x, train=True, mutable=["batch_stats"])
    old_mean = variables["batch_stats"]["norm"]["mean"]
    new_mean = updates["batch_stats"]["norm"]["mean"]
    print("linen apply returns (output, updates); updates:", shapes(updates))
    print("linen returned new statistics:", not jnp.array_equal(old_mean, new_mean))
    print("linen variables passed in unchanged (mean still zero):", bool(jnp.all(old_mean == 0)))
    before = nnx_model.norm.mean[...]
    print("nnx forward takes only the data; output shape:", nnx_model(x).shape)
    print(
        "nnx forward pass changed the BatchStat mean in place:",
        not jnp.array_equal(before, nnx_model.norm.mean[...]),
    )

    print("== Shapes without memory ==")
    with torch.device("meta"):
        abstract_torch = TorchNet()
    weight = abstract_torch.dense1.weight
    print("torch meta-device weight:", weight.device, tuple(weight.shape), "is_meta:", weight.is_meta)
    abstract = jax.eval_shape(lambda key: linen_model.init(key, x, train=False), jax.random.key(0))
    kernel = abstract["params"]["dense1"]["kernel"]
    print("jax.eval_shape(model.init) kernel:", kernel)
    print("  is a ShapeDtypeStruct (no memory):", isinstance(kernel, jax.ShapeDtypeStruct))
    print("  same shapes as the real init:", shapes(abstract) == shapes(variables))
    abstract_model = nnx.eval_shape(lambda: NNXNet(nnx.Rngs(0)))
    kernel = abstract_model.dense1.kernel.get_value()
    print("nnx.eval_shape kernel:", kernel)
    print("  is a ShapeDtypeStruct (no memory):", isinstance(kernel, jax.ShapeDtypeStruct))

    print("== Optimizer state ==")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    print("torch Adam state entries before the first step:", len(optimizer.state))
    model(x_torch).square().mean().backward()
    optimizer.step()
    print("torch Adam state entries after the first step:", len(optimizer.state))
    print("torch Adam state of dense1.weight:", torch_shapes(optimizer.state[model.dense1.weight].items()))
    opt_state = optax.adam(1e-3).init(variables["params"])
    print("optax adam init returns:", shapes(opt_state))
    nnx_optimizer = nnx.Optimizer(nnx_model, optax.adam(1e-3), wrt=nnx.Param)
    adam_state = nnx_optimizer.opt_state[0]
    print("nnx.Optimizer holds a", type(adam_state).__name__, "with mu for", sorted(adam_state.mu))
    print("nnx first moment of dense1.kernel:", adam_state.mu["dense1"]["kernel"][...].shape)


if __name__ == "__main__":
    main()
