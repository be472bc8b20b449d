"""Intermediates: the complete program behind docs/intermediates.md.

One small network (Linear 4->8, ReLU, Linear 8->3) in PyTorch, Flax Linen and Flax NNX, with PyTorch's
weights copied into the other two (kernel = weight.T). Its intermediate activations are recorded with
PyTorch's forward hooks and torch.fx (with a residual block for a value that no hook receives), Linen's
``sow`` and ``capture_intermediates``, and NNX's ``sow`` inside ``nnx.capture`` and ``method_outputs`` (which
methods it records, and that it wraps them on the classes during the call); the recorded values are compared
across frameworks, the
programs JAX compiles with and without recording are compared, and a record that grows when it is fed
back in is shown in each framework.

Run it with ``python -W error code/intermediates.py``; tests/test_intermediates.py checks what it prints.
The functions are importable: ``from intermediates import make_models`` with code/ on ``sys.path``.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import linen as nn
from flax import nnx

IN_FEATURES, HIDDEN, NUM_CLASSES, NUM_EXAMPLES = 4, 8, 3, 6
TOLERANCE = 1e-6  # float32 results of the same weights and inputs, computed by different libraries


def make_data(seed=0, num_examples=NUM_EXAMPLES):
    """A seeded batch as a NumPy array, so that the three frameworks see the same numbers."""
    return np.random.default_rng(seed).normal(size=(num_examples, IN_FEATURES)).astype(np.float32)


# -- The network, three times --------------------------------------------------------------------


class TorchMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense1 = torch.nn.Linear(IN_FEATURES, HIDDEN)
        self.dense2 = torch.nn.Linear(HIDDEN, NUM_CLASSES)

    def forward(self, x):
        hidden = torch.relu(self.dense1(x))  # a function, not a module; a hook on dense2 receives its output
        return self.dense2(hidden)


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        hidden = nn.relu(nn.Dense(HIDDEN, name="dense1")(x))
        self.sow("intermediates", "hidden", hidden)
        return nn.Dense(NUM_CLASSES, name="dense2")(hidden)


class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
        self.dense2 = nnx.Linear(HIDDEN, NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        hidden = nnx.relu(self.dense1(x))
        self.sow(nnx.Intermediate, "hidden", hidden)
        return self.dense2(hidden)


def params_from_torch(torch_model):
    """PyTorch's weights as a Linen ``params`` tree: a Dense kernel is the transposed Linear weight."""
    layers = {"dense1": torch_model.dense1, "dense2": torch_model.dense2}
    return {
        name: {
            "kernel": jnp.asarray(layer.weight.detach().numpy().T),
            "bias": jnp.asarray(layer.bias.detach().numpy()),
        }
        for name, layer in layers.items()
    }


def copy_into_nnx(model, params):
    for name, layer_params in params.items():
        layer = getattr(model, name)
        layer.kernel[...] = layer_params["kernel"]
        layer.bias[...] = layer_params["bias"]
    return model


def make_models(seed=0, nnx_class=NNXMLP):
    """The three networks with the same weights: PyTorch's, drawn from ``seed``."""
    torch.manual_seed(seed)
    torch_model = TorchMLP()
    params = params_from_torch(torch_model)
    nnx_model = copy_into_nnx(nnx_class(nnx.Rngs(seed)), params)
    return torch_model, params, nnx_model


def max_diff(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def shapes(tree):
    """A tree of arrays (or an NNX State) as the same tree of shapes, for printing."""
    if isinstance(tree, nnx.State):
        tree = nnx.to_pure_dict(tree)
    return jax.tree.map(lambda a: tuple(a.shape), tree)


# -- Recording a layer's output ------------------------------------------------------------------


def torch_hook_dense1(torch_model, x):
    """dense1's output through a forward hook, and what the hook records once it is removed."""
    recorded = {}

    def keep_output(module, args, output):
        recorded["dense1"] = output.detach().clone()

    handle = torch_model.dense1.register_forward_hook(keep_output)
    with torch.no_grad():
        torch_model(torch.from_numpy(x))
    handle.remove()
    first = recorded.pop("dense1")
    with torch.no_grad():
        torch_model(torch.from_numpy(x))
    return first, dict(recorded), type(handle).__name__


def torch_fx_values(torch_model, x):
    """Every value of the forward pass, functions included, by running its torch.fx graph node by node."""

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            value = super().run_node(node)
            self.values[node.name] = value
            return value

    graph_module = torch.fx.symbolic_trace(torch_model)
    recorder = Recorder(graph_module)
    recorder.values = {}
    with torch.no_grad():
        recorder.run(torch.from_numpy(x))
    return recorder.values


def hooks_that_receive(model, x, value):
    """Hang a forward hook on every module (the model too); name the hooks that receive ``value``."""
    found = []

    def make_hook(name):
        def hook(module, args, output):
            received = {f"args[{i}]": arg for i, arg in enumerate(args)} | {"output": output}
            found.extend(f"{name or 'model'} {key}" for key, v in received.items() if torch.equal(v, value))

        return hook

    handles = [module.register_forward_hook(make_hook(name)) for name, module in model.named_modules()]
    with torch.no_grad():
        model(torch.from_numpy(x))
    for handle in handles:
        handle.remove()
    return found


class Residual(torch.nn.Module):
    """A residual block: the sum goes from the addition straight into torch.relu, through no module."""

    def __init__(self):
        super().__init__()
        self.dense = torch.nn.Linear(IN_FEATURES, IN_FEATURES)

    def forward(self, x):
        return torch.relu(self.dense(x) + x)


def make_residual(seed=0):
    torch.manual_seed(seed)
    return Residual()


def only_dense1(module, method_name):
    """A capture_intermediates filter: record dense1's __call__ and nothing else."""
    return module.name == "dense1" and method_name == "__call__"


class Subclass(NNXMLP):
    """Inherits ``__call__`` from NNXMLP; defines a public method and a private one."""

    def logits(self, x):
        return self._scores(x)

    def _scores(self, x):
        return self(x)


def nnx_subclass_methods(params, x):
    """What method_outputs records for a Subclass called through its own public method."""
    model = copy_into_nnx(Subclass(nnx.Rngs(0)), params)
    capture = nnx.capture(lambda model, x: model.logits(x), nnx.Intermediate, method_outputs=nnx.Intermediate)
    return capture(model, x)[1]


def nnx_class_patched(nnx_model, x):
    """Is NNXMLP.__call__ the original function during an nnx.capture with method_outputs, and after it?"""
    original = NNXMLP.__call__
    check = nnx.capture(lambda model, x: NNXMLP.__call__ is original, method_outputs=nnx.Intermediate)
    return check(nnx_model, x), NNXMLP.__call__ is original


SOW_DEPRECATION = "Using 'Module.sow()' outside of 'nnx.capture()' is deprecated"


def sow_source_says_deprecated():
    """Module.sow's pinned source holds the deprecation warning (read, not triggered)."""
    return SOW_DEPRECATION in inspect.getsource(nnx.Module.sow)


# -- Recording under jit, and what it costs ------------------------------------------------------


def linen_jaxprs(params, x):
    """Jaxprs of Linen's apply: a model without sow, the sowing model with and without recording."""

    class NoSow(nn.Module):
        @nn.compact
        def __call__(self, x):
            hidden = nn.relu(nn.Dense(HIDDEN, name="dense1")(x))
            return nn.Dense(NUM_CLASSES, name="dense2")(hidden)

    variables = {"params": params}
    model = LinenMLP()
    programs = {
        "no sow in the model": lambda v, x: NoSow().apply(v, x),
        "sow, not requested": lambda v, x: model.apply(v, x),
        'mutable=["intermediates"]': lambda v, x: model.apply(v, x, mutable=["intermediates"]),
        "capture_intermediates=True": lambda v, x: model.apply(v, x, capture_intermediates=True),
    }
    return {name: jax.make_jaxpr(fn)(variables, x) for name, fn in programs.items()}


def nnx_jaxprs(params, x):
    """Jaxprs of NNX's forward pass (split/merge, so that jax.make_jaxpr sees a pure function)."""

    class NoSow(nnx.Module):
        def __init__(self, rngs):
            self.dense1 = nnx.Linear(IN_FEATURES, HIDDEN, rngs=rngs)
            self.dense2 = nnx.Linear(HIDDEN, NUM_CLASSES, rngs=rngs)

        def __call__(self, x):
            return self.dense2(nnx.relu(self.dense1(x)))

    sowing_graph, sowing_state = nnx.split(copy_into_nnx(NNXMLP(nnx.Rngs(0)), params))
    plain_graph, plain_state = nnx.split(copy_into_nnx(NoSow(nnx.Rngs(0)), params))

    def no_sow(state, x):
        return nnx.merge(plain_graph, state)(x)

    def not_requested(state, x):
        return nnx.capture(nnx.merge(sowing_graph, state))(x)

    def requested(state, x):
        return nnx.capture(nnx.merge(sowing_graph, state), nnx.Intermediate)(x)

    def method_outputs(state, x):
        model = nnx.merge(plain_graph, state)
        return nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)

    return {
        "no sow in the model": jax.make_jaxpr(no_sow)(plain_state, x),
        "nnx.capture(model)": jax.make_jaxpr(not_requested)(sowing_state, x),
        "nnx.capture(model, nnx.Intermediate)": jax.make_jaxpr(requested)(sowing_state, x),
        "method_outputs=nnx.Intermediate": jax.make_jaxpr(method_outputs)(plain_state, x),
    }


def describe_jaxprs(jaxprs):
    """One line per program: its equations and outputs, compared with the first program's."""
    reference = next(iter(jaxprs.values()))
    for name, jaxpr in jaxprs.items():
        same_equations = [str(e) for e in jaxpr.eqns] == [str(e) for e in reference.eqns]
        print(
            f"{name:38} equations {len(jaxpr.eqns)}, outputs {len(jaxpr.out_avals)},"
            f" same equations: {same_equations}, same jaxpr: {str(jaxpr) == str(reference)}"
        )


# -- Records that grow ---------------------------------------------------------------------------


def torch_hook_list_grows(torch_model, x, calls=3):
    """A hook that appends, left registered: one entry per forward pass, until it is removed."""
    recorded = []
    handle = torch_model.dense1.register_forward_hook(lambda module, args, output: recorded.append(output))
    lengths = []
    with torch.no_grad():
        for _ in range(calls):
            torch_model(torch.from_numpy(x))
            lengths.append(len(recorded))
        handle.remove()
        torch_model(torch.from_numpy(x))
    return lengths, len(recorded)


def linen_fed_back(params, x, calls=3):
    """The intermediates merged back into the variables, as batch_stats are: the tuple grows, jit retraces."""
    model, traces = LinenMLP(), []

    @jax.jit
    def forward(variables, x):
        traces.append(1)  # runs only while tracing
        return model.apply(variables, x, mutable=["intermediates"])

    variables, fed_back = {"params": params}, []
    for _ in range(calls):
        _, updates = forward(variables, x)
        variables = {**variables, **updates}
        fed_back.append(len(updates["intermediates"]["hidden"]))
    traces_fed_back = len(traces)
    kept_apart = []
    for _ in range(calls):
        _, updates = forward({"params": params}, x)
        kept_apart.append(len(updates["intermediates"]["hidden"]))
    return fed_back, traces_fed_back, kept_apart, len(traces) - traces_fed_back


def nnx_fed_back(nnx_model, x, calls=3):
    """nnx.capture starts empty at each call, unless its last record is passed back as ``init``."""
    fresh = [len(nnx.capture(nnx_model, nnx.Intermediate)(x)[1]["hidden"].get_value()) for _ in range(calls)]
    recorded, fed_back = None, []
    for _ in range(calls):
        _, recorded = nnx.capture(nnx_model, nnx.Intermediate, init=recorded)(x)
        fed_back.append(len(recorded["hidden"].get_value()))
    return fresh, fed_back


# -- The exercise: a running maximum, recorded on purpose ------------------------------------------


def running_max_torch(torch_model, batches):
    running = torch.zeros(HIDDEN)

    def keep_max(module, args, output):
        running.copy_(torch.maximum(running, torch.relu(output).amax(dim=0)))

    handle = torch_model.dense1.register_forward_hook(keep_max)
    with torch.no_grad():
        for batch in batches:
            torch_model(torch.from_numpy(batch))
    handle.remove()
    return running.numpy()


class LinenMaxMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        hidden = nn.relu(nn.Dense(HIDDEN, name="dense1")(x))
        self.sow(
            "intermediates",
            "hidden_max",
            hidden.max(axis=0),
            init_fn=lambda: jnp.zeros(HIDDEN),
            reduce_fn=jnp.maximum,
        )
        return nn.Dense(NUM_CLASSES, name="dense2")(hidden)


class NNXMaxMLP(NNXMLP):
    def __call__(self, x):
        hidden = nnx.relu(self.dense1(x))
        self.sow(
            nnx.Intermediate,
            "hidden_max",
            hidden.max(axis=0),
            init_fn=lambda: jnp.zeros(HIDDEN),
            reduce_fn=jnp.maximum,
        )
        return self.dense2(hidden)


def running_max_linen(params, batches):
    variables = {"params": params}
    for batch in batches:
        _, updates = LinenMaxMLP().apply(variables, batch, mutable=["intermediates"])
        variables = {"params": params, **updates}  # fed back on purpose
    return variables["intermediates"]["hidden_max"]


def running_max_nnx(nnx_model, batches):
    recorded = None
    for batch in batches:
        _, recorded = nnx.capture(nnx_model, nnx.Intermediate, init=recorded)(batch)
    return recorded["hidden_max"][...]


def main():
    x = make_data()
    torch_model, params, nnx_model = make_models()
    linen_model = LinenMLP()
    variables = {"params": params}
    layers = f"Linear {IN_FEATURES}->{HIDDEN}, ReLU, Linear {HIDDEN}->{NUM_CLASSES}"
    print(f"== The network: x {x.shape}, {layers}")
    with torch.no_grad():
        torch_out = torch_model(torch.from_numpy(x)).numpy()
    print("linen params:", shapes(params))
    print(f"max |Linen - PyTorch| output: {max_diff(linen_model.apply(variables, x), torch_out):.1e}")
    nnx_out = nnx.capture(nnx_model)(x)
    print(f"max |NNX - PyTorch| output: {max_diff(nnx_out, torch_out):.1e}")

    print("== A layer's output")
    torch_dense1, after_remove, handle_type = torch_hook_dense1(torch_model, x)
    print("register_forward_hook returns:", handle_type)
    print("PyTorch hook recorded dense1:", tuple(torch_dense1.shape))
    print("recorded after handle.remove():", after_remove)
    _, linen_all = linen_model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    print("Linen capture_intermediates=True:", shapes(linen_all))
    _, linen_filtered = linen_model.apply(
        variables, x, capture_intermediates=only_dense1, mutable=["intermediates"]
    )
    print("Linen capture_intermediates=only_dense1:", shapes(linen_filtered))
    _, nnx_methods = nnx.capture(nnx_model, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
    print("NNX method_outputs=nnx.Intermediate:", shapes(nnx_methods))
    print("NNX recorded type:", type(nnx_methods["dense1"]["__call__"]).__name__)
    print("nnx.capture's parameters:", list(inspect.signature(nnx.capture).parameters))
    print("NNX method_outputs, a subclass called through logits:", shapes(nnx_subclass_methods(params, x)))
    during, after = nnx_class_patched(nnx_model, x)
    print(f"NNXMLP.__call__ is the original during the call: {during} | after it: {after}")

    print("== Any value of the forward pass")
    fx_values = torch_fx_values(torch_model, x)
    print("torch.fx nodes:", list(fx_values))
    print("relu, hooks that receive it:", hooks_that_receive(torch_model, x, fx_values["relu"]))
    block = make_residual()
    block_values = torch_fx_values(block, x)
    print("residual block, torch.fx nodes:", list(block_values))
    print("add, hooks that receive it:", hooks_that_receive(block, x, block_values["add"]))
    _, linen_sown = linen_model.apply(variables, x, mutable=["intermediates"])
    print('Linen sow with mutable=["intermediates"]:', shapes(linen_sown))
    _, nnx_sown = nnx.capture(nnx_model, nnx.Intermediate)(x)
    print("NNX sow in nnx.capture(model, nnx.Intermediate):", shapes(nnx_sown))

    print(f"== The same activations in three frameworks (tolerance {TOLERANCE:.0e})")
    pairs = {
        "dense1": (
            torch_dense1.numpy(),
            linen_filtered["intermediates"]["dense1"]["__call__"][0],
            nnx_methods["dense1"]["__call__"][0],
        ),
        "hidden": (
            fx_values["relu"].numpy(),
            linen_sown["intermediates"]["hidden"][0],
            nnx_sown["hidden"][0],
        ),
    }
    for name, (torch_value, linen_value, nnx_value) in pairs.items():
        linen_diff, nnx_diff = max_diff(linen_value, torch_value), max_diff(nnx_value, torch_value)
        within = max(linen_diff, nnx_diff) <= TOLERANCE
        diffs = f"max |Linen - PyTorch| {linen_diff:.1e}, max |NNX - PyTorch| {nnx_diff:.1e}"
        print(f"{name}: {diffs}, within: {within}")

    print("== Why it is state")
    plain = linen_model.apply(variables, x)
    print("Linen apply without mutable returns:", type(plain).__name__, tuple(plain.shape))
    print("Linen init keeps:", list(linen_model.init(jax.random.key(0), x)))
    implicit = linen_model.apply(variables, x, capture_intermediates=True)
    pair = isinstance(implicit, tuple) and len(implicit) == 2
    print("capture_intermediates=True alone returns a pair:", pair)
    print("NNX capture returns:", type(nnx_sown).__name__, "of", type(nnx_sown["hidden"]).__name__)
    print("NNX model keeps afterwards:", shapes(nnx.state(nnx_model, nnx.Intermediate)))
    print("nnx.capture(model) returns:", type(nnx_out).__name__, tuple(nnx_out.shape))
    print(f"Module.sow's source says {SOW_DEPRECATION!r}:", sow_source_says_deprecated())

    print("== Under jit")
    stash = {}

    def forward_and_stash(params, x):
        hidden = nn.relu(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
        stash["hidden"] = hidden  # what a hook does: write into an object outside the function
        return hidden @ params["dense2"]["kernel"] + params["dense2"]["bias"]

    jax.jit(forward_and_stash)(params, x)
    print("a dict written inside jax.jit holds:", type(stash["hidden"]).__name__)
    jit_linen = jax.jit(lambda v, x: linen_model.apply(v, x, mutable=["intermediates"]))
    _, linen_jitted = jit_linen(variables, x)
    diff = max_diff(linen_jitted["intermediates"]["hidden"][0], linen_sown["intermediates"]["hidden"][0])
    print(f"Linen under jax.jit: {shapes(linen_jitted)}, max |jit - eager| {diff:.1e}")
    print("Linen jit within 1e-6 of eager:", diff <= TOLERANCE)

    @nnx.jit
    @nnx.capture(nnx.Intermediate)
    def nnx_forward(model, x):
        return model(x)

    _, nnx_jitted = nnx_forward(nnx_model, x)
    diff = max_diff(nnx_jitted["hidden"][0], nnx_sown["hidden"][0])
    print(f"NNX under nnx.jit: {shapes(nnx_jitted)}, max |jit - eager| {diff:.1e}")
    print("NNX jit within 1e-6 of eager:", diff <= TOLERANCE)
    print("-- Linen jaxprs")
    describe_jaxprs(linen_jaxprs(params, x))
    print("-- NNX jaxprs")
    describe_jaxprs(nnx_jaxprs(params, x))

    print("== Records that grow")
    lengths, after = torch_hook_list_grows(torch_model, x)
    print(f"PyTorch appending hook, entries after each call: {lengths}", end="")
    print(f"; after remove and one more call: {after}")
    fed_back, traces, kept_apart, new_traces = linen_fed_back(params, x)
    print(f"Linen fed back: tuple lengths {fed_back}, traces {traces}")
    print(f"Linen kept apart: tuple lengths {kept_apart}, new traces {new_traces}")
    fresh, nnx_grown = nnx_fed_back(nnx_model, x)
    print(f"NNX fresh capture: tuple lengths {fresh}; passed back as init: {nnx_grown}")

    print("== Exercise: a running maximum")
    batches = [make_data(seed) for seed in (1, 2, 3)]
    expected = np.concatenate([torch_fx_values(torch_model, b)["relu"].numpy() for b in batches]).max(axis=0)
    from_torch = running_max_torch(torch_model, batches)
    from_linen = running_max_linen(params, batches)
    from_nnx = running_max_nnx(copy_into_nnx(NNXMaxMLP(nnx.Rngs(0)), params), batches)
    print("running max shape:", from_linen.shape)
    for name, value in [("PyTorch", from_torch), ("Linen", from_linen), ("NNX", from_nnx)]:
        print(f"{name}: max |running max - max over all batches| {max_diff(value, expected):.1e}")


if __name__ == "__main__":
    main()
