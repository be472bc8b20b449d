"""Caches for decoding: the complete program behind docs/decoding-cache.md.

A tiny decoder (token and position embeddings, one causal self-attention layer with a residual, a linear head
to the vocabulary) in PyTorch, Flax Linen and Flax NNX. Each framework decodes a sequence one token at a
time with a key/value cache and gets the logits of the full causal forward pass without it: PyTorch with a
cache the model returns and that grows, Linen with its ``cache`` collection, NNX with the ``nnx.Cache``
variables of ``nnx.MultiHeadAttention``, both of a fixed size with an index (a growing cache would be traced
again at every step). It then shows two caller mistakes that fail silently (one token past the end, the
same in Linen and NNX; ``is_causal=True`` while decoding), a limitation of ``nnx.view`` at flax 0.12.8, and
greedy generation with and without the cache.

Run it with ``python code/decoding_cache.py``; tests/test_decoding_cache.py checks what it prints.
The functions are importable: ``from decoding_cache import Decoder`` with code/ on ``sys.path``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import linen as nn
from flax import nnx
from flax.errors import ModifyScopeVariableError

VOCAB, FEATURES, HEADS, MAX_LEN, BATCH = 16, 8, 2, 8, 2
HEAD_DIM = FEATURES // HEADS
TOLERANCE = 1e-5  # float32: the one-token steps group the arithmetic differently from the full pass


def make_tokens(seed=0):
    tokens = np.random.default_rng(seed).integers(0, VOCAB, size=(BATCH, MAX_LEN))
    positions = np.broadcast_to(np.arange(MAX_LEN), (BATCH, MAX_LEN))
    return tokens, positions


# -- PyTorch: the model returns its cache ---------------------------------------------------------


class TorchDecoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, FEATURES)
        self.pos = torch.nn.Embedding(MAX_LEN, FEATURES)
        self.query = torch.nn.Linear(FEATURES, FEATURES)
        self.key = torch.nn.Linear(FEATURES, FEATURES)
        self.value = torch.nn.Linear(FEATURES, FEATURES)
        self.out = torch.nn.Linear(FEATURES, FEATURES)
        self.head = torch.nn.Linear(FEATURES, VOCAB)

    def forward(self, tokens, positions, cache=None):
        x = self.embed(tokens) + self.pos(positions)
        batch, length, _ = x.shape

        def heads(z):  # (batch, length, features) -> (batch, heads, length, head_dim)
            return z.view(batch, length, HEADS, HEAD_DIM).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        if cache is not None:  # the keys and values of the earlier tokens
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        total = k.shape[2]
        # query i sits at position total - length + i and sees the keys up to it
        mask = torch.ones(length, total, dtype=torch.bool).tril(diagonal=total - length)
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, length, FEATURES))
        return self.head(x), (k, v)


def torch_run(tokens, positions):
    torch.manual_seed(0)
    model = TorchDecoder()
    tokens, positions = torch.tensor(tokens), torch.tensor(positions)
    shapes = []
    with torch.no_grad():
        full, _ = model(tokens, positions)
        cache, steps = None, []
        for t in range(MAX_LEN):
            logits, cache = model(tokens[:, t : t + 1], positions[:, t : t + 1], cache)
            steps.append(logits)
            shapes.append(tuple(cache[0].shape))
    diff = float((torch.cat(steps, dim=1) - full).abs().max())
    return model, shapes, diff


# -- Flax Linen: the cache collection ---------------------------------------------------------------


class LinenDecoder(nn.Module):
    decode: bool = False

    @nn.compact
    def __call__(self, tokens, positions, mask=None):
        x = nn.Embed(VOCAB, FEATURES, name="embed")(tokens)
        x = x + nn.Embed(MAX_LEN, FEATURES, name="pos")(positions)
        attention = nn.MultiHeadDotProductAttention(
            num_heads=HEADS, qkv_features=FEATURES, decode=self.decode, name="attn"
        )
        x = x + attention(x, mask=mask)
        return nn.Dense(VOCAB, name="head")(x)


TRACES = {"linen": 0, "nnx": 0, "growing": 0}


def linen_step(params, cache, token, position):
    TRACES["linen"] += 1  # runs when jax.jit traces, not at every call
    variables = {"params": params, "cache": cache}
    logits, updates = LinenDecoder(decode=True).apply(variables, token, position, mutable=["cache"])
    return logits, updates["cache"]


linen_step_jit = jax.jit(linen_step)


@jax.jit
def linen_full(params, tokens, positions):
    return LinenDecoder().apply({"params": params}, tokens, positions, mask=nn.make_causal_mask(tokens))


def linen_run(tokens, positions):
    tokens, positions = jnp.asarray(tokens), jnp.asarray(positions)
    # init with decode=True on a full-length input: the parameters, and the cache, zeros of that length
    variables = jax.jit(LinenDecoder(decode=True).init)(jax.random.key(0), tokens, positions)
    params, cache = variables["params"], variables["cache"]
    full = linen_full(params, tokens, positions)
    history, steps = [], []
    for t in range(MAX_LEN):
        logits, cache = linen_step_jit(params, cache, tokens[:, t : t + 1], positions[:, t : t + 1])
        steps.append(logits)
        history.append((int(cache["attn"]["cache_index"]), tuple(cache["attn"]["cached_key"].shape)))
    diff = float(jnp.abs(jnp.concatenate(steps, axis=1) - full).max())
    return variables, full, cache, history, diff


@jax.jit
def append(cache, new):
    """A cache that grows: concatenate the new key, as the PyTorch model does with torch.cat."""
    TRACES["growing"] += 1
    return jnp.concatenate([cache, new], axis=1)


def growing_cache_traces():
    """Append MAX_LEN keys to a growing cache under jax.jit; return the number of traces and the shape."""
    before = TRACES["growing"]
    cache = jnp.zeros((BATCH, 0, HEADS, HEAD_DIM))
    for _ in range(MAX_LEN):
        cache = append(cache, jnp.ones((BATCH, 1, HEADS, HEAD_DIM)))
    return TRACES["growing"] - before, tuple(cache.shape)


def overwritten(before, after):
    """The cache positions where any key changed."""
    return np.flatnonzero(np.asarray((before != after).any(axis=(0, 2, 3)))).tolist()


# -- Flax NNX: nnx.Cache variables on the attention layer -------------------------------------------


class Decoder(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.embed = nnx.Embed(VOCAB, FEATURES, rngs=rngs)
        self.pos = nnx.Embed(MAX_LEN, FEATURES, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(HEADS, FEATURES, FEATURES, decode=False, rngs=rngs)
        self.head = nnx.Linear(FEATURES, VOCAB, rngs=rngs)

    def __call__(self, tokens, positions, mask=None, decode=None, is_causal=False):
        # decode=None: the attention layer's own setting
        x = self.embed(tokens) + self.pos(positions)
        x = x + self.attn(x, mask=mask, decode=decode, is_causal=is_causal)
        return self.head(x)


@nnx.jit
def nnx_step(model, token, position):
    TRACES["nnx"] += 1
    return model(token, position, decode=True)  # writes the cache in place


def filled_slots(attn):
    """How many positions of the cache hold a key (a written slot is not all zeros)."""
    return int((attn.cached_key[...] != 0).any(axis=(-2, -1)).all(axis=0).sum())


def cache_state(model):
    return [
        (path, type(v).__name__, tuple(v.shape)) for path, v in nnx.to_flat_state(nnx.state(model, nnx.Cache))
    ]


@nnx.jit
def nnx_full(model, tokens, positions):
    return model(tokens, positions, mask=nnx.make_causal_mask(tokens))


@nnx.jit
def is_causal_full(model, tokens, positions):
    return model(tokens, positions, is_causal=True)


@nnx.jit
def is_causal_step(model, token, position):
    return model(token, position, decode=True, is_causal=True)


def nnx_decode(model, tokens, positions, *, step=nnx_step, **kwargs):
    model.attn.init_cache((BATCH, MAX_LEN, FEATURES))
    steps, history = [], []
    for t in range(tokens.shape[1]):
        steps.append(step(model, tokens[:, t : t + 1], positions[:, t : t + 1], **kwargs))
        history.append(
            (int(model.attn.cache_index[...]), tuple(model.attn.cached_key.shape), filled_slots(model.attn))
        )
    return jnp.concatenate(steps, axis=1), history


# -- Greedy generation (the exercise) ----------------------------------------------------------------


def generate_with_cache(model, prompt, num_new):
    model.attn.init_cache((prompt.shape[0], MAX_LEN, FEATURES))
    sequence = prompt
    for t in range(prompt.shape[1] + num_new - 1):
        position = jnp.full((prompt.shape[0], 1), t, dtype=jnp.int32)
        logits = nnx_step(model, sequence[:, t : t + 1], position)
        if t + 1 >= prompt.shape[1]:  # past the prompt: append the most likely next token
            sequence = jnp.concatenate([sequence, logits.argmax(-1)], axis=1)
    return sequence


def generate_without_cache(model, prompt, num_new):
    """The full causal pass over the whole sequence at every step. The sequence is padded to MAX_LEN so
    that the compiled pass has one shape; the causal mask keeps the padding out of the earlier positions."""
    batch, length = prompt.shape
    sequence = jnp.zeros((batch, MAX_LEN), jnp.int32).at[:, :length].set(prompt)
    positions = jnp.broadcast_to(jnp.arange(MAX_LEN, dtype=jnp.int32), (batch, MAX_LEN))
    for t in range(length, length + num_new):
        logits = nnx_full(model, sequence, positions)
        sequence = sequence.at[:, t].set(logits[:, t - 1].argmax(-1))
    return sequence[:, : length + num_new]


def main():
    tokens, positions = make_tokens()
    print("tokens:", tokens.shape, "max length:", MAX_LEN)

    print("== PyTorch ==")
    torch_model, shapes, diff = torch_run(tokens, positions)
    print("cache shape by step:", shapes)
    print("state_dict entries:", len(torch_model.state_dict()))
    print("cache in state_dict:", any("cache" in name for name in torch_model.state_dict()))
    print(f"max |stepwise - full|: {diff:.1e} (tolerance {TOLERANCE:.0e})")

    print("== Linen ==")
    variables, full_linen, cache, history, diff = linen_run(tokens, positions)
    params = variables["params"]
    print("collections of init(decode=True):", sorted(variables))
    print(
        "MultiHeadDotProductAttention has init_cache:", hasattr(nn.MultiHeadDotProductAttention, "init_cache")
    )
    print("cache:", jax.tree.map(jnp.shape, cache))
    print("cache index and shape by step:", history)
    print("linen step traced:", TRACES["linen"], "time(s) for", MAX_LEN, "tokens")
    print(f"max |stepwise - full|: {diff:.1e} (tolerance {TOLERANCE:.0e})")
    try:
        LinenDecoder(decode=True).apply({"params": params, "cache": cache}, tokens[:, :1], positions[:, :1])
    except ModifyScopeVariableError as error:
        print("apply without mutable=['cache'] raises:", type(error).__name__)

    print("== NNX ==")
    model = Decoder(nnx.Rngs(0))
    print("Cache variables before init_cache:", cache_state(model))
    print(
        "attn has cached_key:",
        hasattr(model.attn, "cached_key"),
        "and it is None:",
        model.attn.cached_key is None,
    )
    nnx.update(model, params)  # Linen's parameters: the submodules have the same names
    full = nnx_full(model, jnp.asarray(tokens), jnp.asarray(positions))
    print(
        "NNX with Linen's parameters, full pass, max |NNX - Linen|:", float(jnp.abs(full - full_linen).max())
    )
    model.attn.init_cache((BATCH, MAX_LEN, FEATURES))
    for path, kind, shape in cache_state(model):
        print(f"after init_cache: {'/'.join(path)} {kind} {shape}")
    print("collection name of nnx.Cache:", nnx.variable_name_from_type(nnx.Cache))
    stepwise, history = nnx_decode(model, jnp.asarray(tokens), jnp.asarray(positions))
    print("cache index, shape and filled slots by step:", history)
    print("nnx step traced:", TRACES["nnx"], "time(s) for", MAX_LEN, "tokens")
    print(f"max |stepwise - full|: {float(jnp.abs(stepwise - full).max()):.1e} (tolerance {TOLERANCE:.0e})")
    _, params_state, cache_group, rest = nnx.split(model, nnx.Param, nnx.Cache, ...)
    print(
        "split into Param, Cache, rest:",
        len(jax.tree.leaves(params_state)),
        len(jax.tree.leaves(cache_group)),
        len(jax.tree.leaves(rest)),
    )

    print("== Why a fixed size ==")
    traces, shape = growing_cache_traces()
    print("growing cache, append traced:", traces, "time(s) for", MAX_LEN, "tokens, final shape", shape)

    print("== Where it goes wrong ==")
    before = model.attn.cached_key[...]
    # one token too many, at position 0 again: the position embedding has no row for position 8
    nnx_step(model, jnp.asarray(tokens[:, :1]), jnp.asarray(positions[:, :1]))
    print(
        "past the end, NNX: no error, cache_index",
        int(model.attn.cache_index[...]),
        "slots overwritten",
        overwritten(before, model.attn.cached_key[...]),
    )
    _, linen_after = linen_step_jit(params, cache, tokens[:, :1], positions[:, :1])
    print(
        "past the end, Linen: no error, cache_index",
        int(linen_after["attn"]["cache_index"]),
        "slots overwritten",
        overwritten(cache["attn"]["cached_key"], linen_after["attn"]["cached_key"]),
    )
    print("nnx.Embed at position 8, all NaN:", bool(jnp.isnan(model.pos(jnp.array([MAX_LEN]))).all()))
    try:
        torch_model.pos(torch.tensor([MAX_LEN]))
    except IndexError as error:
        print("torch.nn.Embedding at position 8 raises: IndexError", error)
    causal_steps, _ = nnx_decode(model, jnp.asarray(tokens), jnp.asarray(positions), step=is_causal_step)
    causal_full = is_causal_full(model, jnp.asarray(tokens), jnp.asarray(positions))
    print(f"is_causal=True, full pass vs mask: {float(jnp.abs(causal_full - full).max())}")
    print(f"is_causal=True, decoding vs full: {float(jnp.abs(causal_steps - full).max()):.2f}")
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, n, HEAD_DIM, generator=generator) for n in (1, MAX_LEN, MAX_LEN))
    attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    print(
        "PyTorch is_causal=True, 1 query over 8 keys, gives key 0's value:",
        torch.allclose(attended, v[:, :, :1]),
    )
    fresh = Decoder(nnx.Rngs(0))
    for name in ["cached_key", "cached_value", "cache_index"]:
        print(f"fresh attn has {name}:", hasattr(fresh.attn, name), "value:", getattr(fresh.attn, name))
    view = nnx.view(fresh, decode=True, batch_size=BATCH, max_length=MAX_LEN)
    print(
        "nnx.view(decode=True, ...): decode",
        view.attn.decode,
        "cached_key is None:",
        view.attn.cached_key is None,
    )
    try:
        view(jnp.asarray(tokens[:, :1]), jnp.asarray(positions[:, :1]))
    except ValueError as error:
        print("calling the view raises: ValueError", error)

    print("== Exercise: greedy generation ==")
    prompt = jnp.asarray(tokens[:, :2])
    cached = generate_with_cache(model, prompt, MAX_LEN - 2)
    uncached = generate_without_cache(model, prompt, MAX_LEN - 2)
    print("with the cache:   ", np.asarray(cached).tolist())
    print("without the cache:", np.asarray(uncached).tolist())
    print("same tokens:", bool(jnp.array_equal(cached, uncached)))


if __name__ == "__main__":
    main()
