"""TensorFlow's seeded `Dataset.shuffle` order, reproduced without TensorFlow.

Tutorials split their data with `tf.random.set_seed(s)` followed by
`tf.data.Dataset.shuffle(buffer_size, reshuffle_each_iteration=False)`. To
train on exactly their examples, seqlab computes the same order:

1. Seeds. With a global seed `s` and no op seed, TensorFlow (eager) draws the
   op seed from Python's `random.Random(s).randint(0, 2**31 - 1)` for the
   first random op after `set_seed`; both are then reduced modulo 2**31 - 1
   (`tensorflow_op_seeds`).
2. Random numbers. The shuffle kernel draws 32-bit integers from
   Philox4x32-10 (Salmon et al. 2011) keyed by the global seed, with the op
   seed in the upper half of its 128-bit counter: block i is
   `philox(counter=(i, 0, op_seed, 0), key=(seed, 0))`, each block giving
   four numbers in order.
3. Order. With the whole dataset in the buffer (`buffer_size >= size`),
   output k is `buffer[j]` for `j = k + r_k mod (size - k)`, after which
   `buffer[j]` and `buffer[k]` swap: a Fisher-Yates shuffle.

`tests/test_tensorflow_shuffle.py` checks the order against TensorFlow itself
where it is installed, and against orders TensorFlow 2.21 printed, kept in the test.
"""
from __future__ import annotations

import random

import numpy as np

_MULTIPLIERS = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_KEY_INCREMENTS = (np.uint64(0x9E3779B9), np.uint64(0xBB67AE85))
_LOW_32 = np.uint64(0xFFFFFFFF)
_ROUNDS = 10
_MAX_INT32 = 2**31 - 1
_DEFAULT_GRAPH_SEED = 87654321


def philox4x32(blocks: int, key: tuple[int, int], counter_high: tuple[int, int]) -> np.ndarray:
    """The first `blocks` outputs of Philox4x32-10, flattened: `(4 * blocks,)` uint32.

    Block i encrypts the counter `(i, 0, *counter_high)` under `key`; each
    of the 10 rounds multiplies two counter words by fixed constants, mixes
    the high and low halves of the products with the other words and the key,
    then bumps the key by the golden-ratio constants.
    """
    c0 = np.arange(blocks, dtype=np.uint64)
    c1 = np.zeros(blocks, dtype=np.uint64)
    c2 = np.full(blocks, counter_high[0], dtype=np.uint64)
    c3 = np.full(blocks, counter_high[1], dtype=np.uint64)
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(_ROUNDS):
        product0, product1 = _MULTIPLIERS[0] * c0, _MULTIPLIERS[1] * c2  # 32 x 32 -> 64 bits, no overflow
        c0, c1, c2, c3 = ((product1 >> np.uint64(32)) ^ c1 ^ k0, product1 & _LOW_32,
                          (product0 >> np.uint64(32)) ^ c3 ^ k1, product0 & _LOW_32)
        k0, k1 = (k0 + _KEY_INCREMENTS[0]) & _LOW_32, (k1 + _KEY_INCREMENTS[1]) & _LOW_32
    return np.stack([c0, c1, c2, c3], axis=1).reshape(-1).astype(np.uint32)


def tensorflow_shuffle_order(size: int, global_seed: int | None = None, op_seed: int | None = None) -> list[int]:
    """The order in which `Dataset.range(size).shuffle(size)` yields its elements.

    As after `tf.random.set_seed(global_seed)` (eager; the first random op
    after it), with `shuffle(size, seed=op_seed)` if given;
    `reshuffle_each_iteration=False`, or the first epoch otherwise. Any
    buffer of at least `size` gives this order.

        >>> tensorflow_shuffle_order(50_000, global_seed=1)[:4]
        [45362, 48124, 43337, 37255]
    """
    if size < 0:
        raise ValueError(f"size must be at least 0, got {size}")
    seed, seed2 = tensorflow_op_seeds(global_seed, op_seed)
    draws = philox4x32(-(-size // 4), (seed, 0), (seed2, 0)).tolist()
    buffer = list(range(size))
    for k in range(size):
        j = k + draws[k] % (size - k)
        buffer[k], buffer[j] = buffer[j], buffer[k]
    return buffer


def tensorflow_op_seeds(global_seed: int | None, op_seed: int | None) -> tuple[int, int]:
    """The (seed, seed2) pair a random op gets, as TensorFlow's `random_seed.get_seed` derives them.

    Both are reduced modulo 2**31 - 1; with only an op seed the global one is
    87654321; (0, 0) would mean "no seed" to the kernel, so it becomes
    (0, 2**31 - 1).
    """
    if global_seed is None and op_seed is None:
        raise ValueError("with neither a global seed nor an op seed TensorFlow shuffles at random; "
                         "pass global_seed (as tf.random.set_seed) or op_seed (as shuffle(seed=...))")
    if global_seed is None:
        global_seed = _DEFAULT_GRAPH_SEED
    elif op_seed is None:
        op_seed = random.Random(global_seed).randint(0, _MAX_INT32)
    seeds = (global_seed % _MAX_INT32, op_seed % _MAX_INT32)
    return (0, _MAX_INT32) if seeds == (0, 0) else seeds
