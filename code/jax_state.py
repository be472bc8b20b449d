"""Dealing with state in JAX: the complete program behind docs/jax-state.md.

Run it with ``python code/jax_state.py``; tests/test_jax_state.py checks what it prints.
"""

import jax
import jax.numpy as jnp
import numpy as np
import torch


class StatefulCounter:
    """A counter that keeps its count on the object, the way a PyTorch module keeps its tensors."""

    def __init__(self):
        self.n = 0

    def count(self):
        """Add one to the stored count and return it."""
        print("  (count's Python body runs)")
        self.n += 1
        return self.n


def count(n):
    """Return the next value and the new state, leaving the old state untouched.

    >>> count(0)
    (1, 1)
    >>> value, n = count(41)
    >>> value, n
    (42, 42)
    """
    return n + 1, n + 1


def draw(key, shape):
    """Draw standard normal numbers and return them with the key to use next time.

    The same key always gives the same numbers, so the key is state to carry:

    >>> a, key = draw(jax.random.key(0), (2,))
    >>> b, _ = draw(key, (2,))
    >>> bool(jnp.array_equal(a, b))
    False
    """
    key, subkey = jax.random.split(key)
    return jax.random.normal(subkey, shape), key


def main():
    counter = StatefulCounter()
    print("stateful counter, eager:")
    print("  values:", [counter.count() for _ in range(3)])

    counter = StatefulCounter()
    count_jit = jax.jit(counter.count)
    print("stateful counter, jax.jit:")
    print("  values:", [int(count_jit()) for _ in range(3)])
    print("  counter.n afterwards:", counter.n)

    for label, step in [("eager", count), ("jax.jit", jax.jit(count))]:
        n, values = 0, []
        for _ in range(3):
            value, n = step(n)
            values.append(int(value))
        print(f"explicit state, {label}: {values}")

    np.random.seed(0)
    print("NumPy's global generator advances:", bool(np.random.normal() != np.random.normal()))
    generator = np.random.default_rng(0)
    print("a NumPy default_rng Generator advances:", bool(generator.normal() != generator.normal()))
    torch_generator = torch.Generator().manual_seed(0)
    draws = [torch.randn(1, generator=torch_generator) for _ in range(2)]
    print("a torch.Generator advances:", not torch.equal(*draws))
    key = jax.random.key(0)
    same = jnp.array_equal(jax.random.normal(key, (3,)), jax.random.normal(key, (3,)))
    print("reused key gives the same numbers:", bool(same))
    first, key = draw(key, (3,))
    second, key = draw(key, (3,))
    print("split keys give different numbers:", not bool(jnp.array_equal(first, second)))


if __name__ == "__main__":
    main()
