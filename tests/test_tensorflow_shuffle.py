"""TensorFlow's seeded shuffle order, reproduced in NumPy: known answers, and TensorFlow itself where installed."""
import numpy as np
import pytest

from seqlab.data.tensorflow_shuffle import philox4x32, tensorflow_op_seeds, tensorflow_shuffle_order

# Printed by TensorFlow 2.21: tf.random.set_seed(g); Dataset.range(n).shuffle(n, seed=op), first 12.
TENSORFLOW_ORDERS = [
    (1, None, 50_000, [45362, 48124, 43337, 37255, 650, 16536, 45596, 22561, 34752, 3195, 45396, 1160]),
    (0, None, 100, [73, 63, 13, 91, 3, 39, 72, 18, 30, 88, 90, 58]),
    (42, None, 37, [6, 0, 3, 27, 32, 29, 17, 20, 16, 12, 14, 15]),
    (2**31 + 5, None, 10, [6, 4, 8, 7, 1, 9, 5, 0, 3, 2]),
    (7, 123, 20, [4, 15, 8, 6, 10, 16, 12, 13, 14, 17, 9, 2]),
    (None, 99, 20, [3, 6, 19, 0, 18, 8, 9, 17, 1, 15, 4, 7]),
    (0, 0, 9, [0, 3, 1, 5, 2, 7, 6, 8, 4]),
    (-5, None, 12, [9, 0, 2, 10, 3, 6, 4, 8, 1, 11, 7, 5]),
]


def test_philox_known_answer():
    # Random123's known-answer test for Philox4x32-10: zero counter, zero key.
    assert philox4x32(1, (0, 0), (0, 0)).tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


def test_philox_blocks_follow_the_counter():
    four = philox4x32(4, (12, 34), (5, 6))
    assert four.dtype == np.uint32 and four.shape == (16,)
    assert four[:8].tolist() == philox4x32(2, (12, 34), (5, 6)).tolist()
    assert philox4x32(1, (12, 34), (5, 7)).tolist() != four[:4].tolist()


@pytest.mark.parametrize("global_seed, op_seed, size, first", TENSORFLOW_ORDERS)
def test_orders_tensorflow_printed(global_seed, op_seed, size, first):
    order = tensorflow_shuffle_order(size, global_seed, op_seed)
    assert order[:len(first)] == first
    assert sorted(order) == list(range(size))


def test_seed_derivation():
    assert tensorflow_op_seeds(1, None) == (1, 577090037)  # random.Random(1).randint(0, 2**31 - 1)
    assert tensorflow_op_seeds(2**31 + 5, 3) == (6, 3)        # reduced modulo 2**31 - 1
    assert tensorflow_op_seeds(None, 99) == (87654321, 99)    # TensorFlow's default graph seed
    assert tensorflow_op_seeds(0, 0) == (0, 2**31 - 1)        # (0, 0) would mean "unseeded"


def test_edge_sizes_and_bad_arguments():
    assert tensorflow_shuffle_order(0, 3) == []
    assert tensorflow_shuffle_order(1, 3) == [0]
    with pytest.raises(ValueError, match="size must be at least 0"):
        tensorflow_shuffle_order(-1, 3)
    with pytest.raises(ValueError, match="shuffles at random; pass global_seed"):
        tensorflow_shuffle_order(5)


def test_matches_tensorflow_itself():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    for _ in range(6):
        size = int(rng.integers(1, 300))
        global_seed = int(rng.integers(-10, 2**33))
        op_seed = None if rng.random() < 0.5 else int(rng.integers(0, 2**31))
        tf.random.set_seed(global_seed)
        dataset = tf.data.Dataset.range(size).shuffle(size, seed=op_seed, reshuffle_each_iteration=False)
        expected = [int(x) for x in dataset.as_numpy_iterator()]
        assert tensorflow_shuffle_order(size, global_seed, op_seed) == expected, (size, global_seed, op_seed)
