"""CachedStepper: a causal transformer stepped over its key/value caches gives what the whole prefix gives."""

from __future__ import annotations

import pytest
import torch

import seqlab
from seqlab import layers
from seqlab.generation import CachedStepper, Sampling, WindowStepper, generate_steps, stepper_for


def causal_lm(context: int | None, dtype=torch.float32, mask_zero: bool = False) -> seqlab.Sequential:
    torch.manual_seed(1)
    model = seqlab.Sequential([layers.Embedding(12, 8, mask_zero=mask_zero, dtype=dtype),
                               *layers.transformer_stack(8, 2, 16, num_blocks=2, max_len=context, causal=True,
                                                         norm_first=True),
                               layers.Dense(12, dtype=dtype)])
    model.build((None, None))
    return model.to(dtype).eval()


@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_steps_equal_the_whole_prefix_within_the_window(dtype, tolerance):
    model = causal_lm(context=12, dtype=dtype)
    ids = torch.randint(1, 12, (3, 12))
    stepper = stepper_for(model)
    assert isinstance(stepper, CachedStepper) and stepper.context == 12
    with torch.no_grad():
        full = model(ids)
        torch.testing.assert_close(stepper.prime(ids[:, :3]), full[:, 2], rtol=tolerance, atol=tolerance)
        for t in range(3, 12):
            torch.testing.assert_close(stepper.step(ids[:, t]), full[:, t], rtol=tolerance, atol=tolerance)
    assert all(cache.length == 12 for cache in stepper.caches)


def test_past_the_window_it_restarts_from_the_last_keep_tokens():
    model = causal_lm(context=6)
    ids = torch.randint(1, 12, (2, 14))
    stepper = CachedStepper(model, keep=3)
    stepper.prime(ids[:, :6])  # the cache is full
    with torch.no_grad():
        for t in range(6, 14):
            got = stepper.step(ids[:, t])
            # each step reads the last 3 to 6 tokens, refilled from 3 whenever the 6 positions are used up
            held = stepper.window.shape[1]
            assert 3 <= held <= 6 and torch.equal(stepper.window, ids[:, t + 1 - held:t + 1])
            torch.testing.assert_close(got, model(stepper.window)[:, -1], rtol=1e-5, atol=1e-6)


def test_sinusoidal_positions_and_padding():
    model = causal_lm(context=None, mask_zero=True)
    with pytest.raises(ValueError, match="needs context=N"):
        CachedStepper(model)
    stepper = CachedStepper(model, context=32)
    ids = torch.randint(1, 12, (2, 9))
    ids[0, :2] = 0  # a left-padded prompt
    with torch.no_grad():
        full = model(ids)
        stepper.prime(ids[:, :5])
        for t in range(5, 9):
            got = stepper.step(ids[:, t])
        torch.testing.assert_close(got, full[:, -1], rtol=1e-5, atol=1e-6)


def test_reorder_copies_a_primed_stream_and_generation_matches_the_window_stepper():
    model = causal_lm(context=10)
    prompt = torch.randint(1, 12, (1, 4))
    cached, window = CachedStepper(model), WindowStepper(model)
    cached.prime(prompt)
    cached.reorder(torch.zeros(3, dtype=torch.long))  # three streams from one prompt
    window.prime(prompt.expand(3, -1))
    with torch.no_grad():
        for token in ([1, 2, 3], [4, 4, 4]):
            torch.testing.assert_close(cached.step(torch.tensor(token)), window.step(torch.tensor(token)),
                                       rtol=1e-5, atol=1e-6)
    greedy = Sampling(greedy=True)
    from_cache = [step.ids for step in generate_steps(CachedStepper(model), prompt, 7, greedy)]
    from_window = [step.ids for step in generate_steps(WindowStepper(model), prompt, 7, greedy)]
    assert torch.equal(torch.stack(from_cache), torch.stack(from_window))


def test_refuses_models_it_cannot_step():
    encoder = seqlab.Sequential([layers.Embedding(12, 8), layers.PositionEmbedding(6),
                                 layers.TransformerBlock(8, 2, 16), layers.Dense(12)])
    encoder.build((None, None))
    with pytest.raises(ValueError, match="not causal"):
        CachedStepper(encoder)
    with pytest.raises(ValueError, match="exceeds the 10 positions"):
        CachedStepper(causal_lm(context=10), context=20)
    with pytest.raises(ValueError, match="keep must be between 1 and context - 1"):
        CachedStepper(causal_lm(context=10), keep=10)
    with pytest.raises(RuntimeError, match="call prime"):
        CachedStepper(causal_lm(context=10)).step(torch.tensor([1]))
