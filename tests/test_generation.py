"""Sampling math (scale factor, top-k, top-p, greedy) and incremental, batched, seeded generation."""

from __future__ import annotations

import math

import pytest
import torch

import seqlab
from seqlab import layers
from seqlab.data import CharTokenizer, Vocabulary
from seqlab.generation import (Sampling, draw, TextGenerator, UnknownCharactersError, generate_steps, scale_logits,
                               top_k_mask, top_p_mask)
from seqlab.kernels import fused

LOGITS = torch.tensor([[1.0, 1.0, 3.0]])


# ------------------------------------------------------------------ the math
@pytest.mark.parametrize("scale_factor, expected", [
    (1.0, [0.1065, 0.1065, 0.7870]),
    (0.5, [0.2119, 0.2119, 0.5761]),
    (0.1, [0.3104, 0.3104, 0.3792]),
])
def test_scale_factor_on_fixed_logits(scale_factor, expected):
    probabilities = Sampling(scale_factor=scale_factor).probabilities(LOGITS)
    torch.testing.assert_close(probabilities, torch.tensor([expected]), atol=5e-5, rtol=0)
    torch.testing.assert_close(torch.softmax(scale_logits(LOGITS, scale_factor), -1), probabilities)


def test_temperature_is_the_inverse_scale_factor():
    by_temperature = Sampling.create(temperature=2.0)
    assert by_temperature.scale_factor == 0.5 and by_temperature.temperature == 2.0
    torch.testing.assert_close(by_temperature.probabilities(LOGITS), torch.tensor([[0.2119, 0.2119, 0.5761]]),
                               atol=5e-5, rtol=0)
    assert Sampling.create().scale_factor == 1.0
    # α = 2 sharpens: e^6 / (2 e^2 + e^6)
    assert Sampling(scale_factor=2.0).probabilities(LOGITS)[0, 2].item() == pytest.approx(
        math.exp(6) / (2 * math.exp(2) + math.exp(6)), rel=1e-6)


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[0.1, 2.0, 0.5, 3.0, -1.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    assert top_k_mask(logits, 2).tolist() == [[False, True, False, True, False], [True, True, False, False, False]]
    assert top_k_mask(logits, 1).nonzero().tolist() == [[0, 3], [1, 0]]
    assert top_k_mask(logits, 5).all() and top_k_mask(logits, 50).all()
    ties = torch.zeros(1, 6)
    assert top_k_mask(ties, 3).sum().item() == 3
    probabilities = Sampling(top_k=2).probabilities(logits[:1])
    kept = torch.softmax(torch.tensor([2.0, 3.0]), -1)
    torch.testing.assert_close(probabilities, torch.tensor([[0.0, kept[0], 0.0, kept[1], 0.0]]))


@pytest.mark.parametrize("p, kept", [
    (0.45, [0]), (0.55, [0, 1]), (0.79, [0, 1]), (0.81, [0, 1, 2]), (0.96, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3]),
])
def test_top_p_keeps_the_fewest_most_probable_reaching_p(p, kept):
    logits = torch.log(torch.tensor([[0.15, 0.5, 0.05, 0.3]]))  # sorted: 0.5, 0.3, 0.15, 0.05
    order = [1, 3, 0, 2]
    expected = torch.zeros(1, 4, dtype=torch.bool)
    expected[0, [order[i] for i in kept]] = True
    assert torch.equal(top_p_mask(logits, p), expected)
    probabilities = Sampling(top_p=p).probabilities(logits)
    assert torch.equal(probabilities > 0, expected)
    assert probabilities.sum().item() == pytest.approx(1.0)


def test_top_p_always_keeps_the_most_probable_and_renormalizes():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    assert top_p_mask(logits, 0.01).tolist() == [[True, False, False]]
    torch.testing.assert_close(Sampling(top_p=0.55).probabilities(logits), torch.tensor([[0.625, 0.375, 0.0]]))


def test_top_k_then_top_p_and_forbidden_tokens():
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    both = Sampling(top_k=3, top_p=0.75).probabilities(logits)  # top-3 renormalized: 0.444, 0.333, 0.222
    torch.testing.assert_close(both, torch.tensor([[4 / 7, 3 / 7, 0.0, 0.0]]))
    forbidden = Sampling().probabilities(logits, forbidden=torch.tensor([0]))
    torch.testing.assert_close(forbidden, torch.tensor([[0.0, 0.5, 1 / 3, 1 / 6]]))


def test_greedy_takes_the_argmax_and_never_draws():
    logits = torch.tensor([[0.1, 2.0, 0.5], [3.0, 0.0, -1.0]])
    ids, probabilities = Sampling(greedy=True).choose(logits)
    assert ids.tolist() == [1, 0]
    assert probabilities.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    ids, _ = Sampling(greedy=True).choose(logits, forbidden=torch.tensor([1]))
    assert ids.tolist() == [2, 0]


def test_draws_follow_the_distribution():
    generator = torch.Generator().manual_seed(0)
    logits = LOGITS.expand(20_000, 3)
    ids, _ = Sampling(scale_factor=0.5).choose(logits, generator)
    frequencies = torch.bincount(ids, minlength=3).float() / len(ids)
    torch.testing.assert_close(frequencies, torch.tensor([0.2119, 0.2119, 0.5761]), atol=0.015, rtol=0)


def test_draw_never_picks_a_zero_probability_entry_and_follows_the_rest():
    generator = torch.Generator().manual_seed(1)
    probabilities = torch.tensor([[0.0, 0.25, 0.0, 0.75, 0.0]]).expand(40_000, 5)
    ids = draw(probabilities, generator)
    counts = torch.bincount(ids, minlength=5)
    assert counts[[0, 2, 4]].tolist() == [0, 0, 0]
    assert abs(counts[3].item() / len(ids) - 0.75) < 0.01
    assert draw(torch.tensor([[0.0, 1.0]]), generator).tolist() == [1]


@pytest.mark.skipif(not fused.available(), reason="seqlab's C++ extension is not built here")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch, vocabulary", [(1, 80), (64, 80), (13, 3), (300, 1000), (5, 1)])
def test_compiled_draw_gives_the_indices_of_the_tensor_operations(monkeypatch, dtype, batch, vocabulary):
    weights = torch.softmax(3 * torch.randn(batch, vocabulary, generator=torch.Generator().manual_seed(batch),
                                            dtype=dtype), -1) * 2.5  # rows need not sum to one
    if vocabulary > 2:
        weights[:, ::4] = 0.0
    compiled = [draw(weights, torch.Generator().manual_seed(seed)) for seed in range(10)]
    monkeypatch.setattr(fused, "available", lambda: False)  # the pure-PyTorch path
    for seed, ids in enumerate(compiled):
        assert torch.equal(ids, draw(weights, torch.Generator().manual_seed(seed)))
        assert ids.dtype == torch.int64 and ids.shape == (batch,)
        assert bool((weights.gather(1, ids[:, None]) > 0).all())


@pytest.mark.skipif(not fused.available(), reason="seqlab's C++ extension is not built here")
def test_compiled_draw_at_the_top_of_the_range_stays_on_the_last_nonzero_entry():
    top = torch.tensor([math.nextafter(1.0, 0.0)] * 2, dtype=torch.float64)
    weights = torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    assert fused.extension().draw(weights, top).tolist() == [1, 2]
    assert fused.extension().draw(weights, torch.zeros(2, dtype=torch.float64)).tolist() == [0, 0]
    with pytest.raises(RuntimeError, match="uniform must be a \\(batch,\\) float64"):
        fused.extension().draw(weights, top.float())


@pytest.mark.parametrize("arguments, message", [
    ({"temperature": 0.5, "scale_factor": 2.0}, "not both"),
    ({"temperature": 0.0}, "temperature must be a positive"),
    ({"scale_factor": -1.0}, "scale factor"),
    ({"top_k": 0}, "top_k must be a positive"),
    ({"top_p": 1.5}, "top_p must be in"),
])
def test_invalid_sampling_settings_say_what_is_wrong(arguments, message):
    with pytest.raises(ValueError, match=message):
        Sampling.create(**arguments)


# ------------------------------------------------------------- generation
TEXT = "the island was a volcanic island; the settlers explored it. "


def tiny_model(vocabulary_size: int, cell=layers.LSTM, stacked: bool = False) -> seqlab.Sequential:
    torch.manual_seed(0)
    recurrent = [cell(12, return_sequences=True)]
    if stacked:
        recurrent += [layers.Dropout(0.5), cell(10, return_sequences=True)]
    model = seqlab.Sequential([layers.Embedding(vocabulary_size, 6), *recurrent, layers.Dense(vocabulary_size)])
    model.build((None, None))
    return model


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary.build([TEXT], tokenizer=CharTokenizer())


@pytest.mark.parametrize("cell, stacked", [(layers.LSTM, False), (layers.GRU, True), (layers.SimpleRNN, True)])
def test_incremental_steps_give_the_full_prefix_distributions(vocabulary, cell, stacked):
    model = tiny_model(len(vocabulary), cell, stacked)
    model.eval()
    sampling = Sampling(scale_factor=0.7, top_k=10)
    prime = torch.tensor([vocabulary.encode("the isl")] * 3)
    generator = torch.Generator().manual_seed(5)
    sequence = prime
    for step in generate_steps(model, prime, length=12, sampling=sampling, generator=generator):
        with torch.no_grad():
            full = model(sequence)[:, -1]  # the whole prefix, re-run from scratch
        torch.testing.assert_close(step.probabilities, sampling.probabilities(full), atol=1e-6, rtol=1e-5)
        sequence = torch.cat([sequence, step.ids[:, None]], dim=1)
    assert sequence.shape == (3, 7 + 12)
    assert len({tuple(row) for row in sequence.tolist()}) > 1  # the batched samples differ


def test_the_same_seed_gives_the_same_text(vocabulary):
    generator = TextGenerator(tiny_model(len(vocabulary)), vocabulary)
    first = generator.generate("the", length=60, seed=7, num_samples=2)
    assert first == generator.generate("the", length=60, seed=7, num_samples=2)
    assert first != generator.generate("the", length=60, seed=8, num_samples=2)
    assert all(text.startswith("the") and len(text) == 63 for text in first)
    assert first[0] != first[1]


def test_padding_and_unknown_are_never_generated(vocabulary):
    model = tiny_model(len(vocabulary))
    with torch.no_grad():  # make the two special indices overwhelmingly likely
        model.layers[-1].bias[[vocabulary.pad_index, vocabulary.unknown_index]] = 50.0
    text = TextGenerator(model, vocabulary).generate("the", length=100, seed=1)[0]
    assert "<pad>" not in text and "<unk>" not in text and set(text) <= set(TEXT)


def test_streaming_yields_one_character_per_sample_per_step(vocabulary):
    generator = TextGenerator(tiny_model(len(vocabulary)), vocabulary)
    steps = list(generator.stream("the", length=5, num_samples=3, seed=2))
    assert len(steps) == 5 and all(len(characters) == 3 for characters in steps)
    columns = ["the" + "".join(c[i] for c in steps) for i in range(3)]
    assert columns == generator.generate("the", length=5, num_samples=3, seed=2)


def test_greedy_generation_is_deterministic_without_a_seed(vocabulary):
    generator = TextGenerator(tiny_model(len(vocabulary)), vocabulary)
    greedy = Sampling(greedy=True)
    assert generator.generate("the", 30, greedy) == generator.generate("the", 30, greedy, seed=123)


def test_unknown_prime_characters_give_a_clear_error(vocabulary):
    generator = TextGenerator(tiny_model(len(vocabulary)), vocabulary)
    with pytest.raises(UnknownCharactersError) as caught:
        generator.generate("the Ωmega 한", length=3)
    message = str(caught.value)
    assert caught.value.characters == ["Ω", "m", "g", "한"]  # each once, in order of appearance
    assert "4 character(s)" in message and "'Ω' (U+03A9)" in message and "'g' (U+0067)" in message and "'한' (U+D55C)" in message
    assert "--allow-unknown" in message
    assert generator.encode("tΩ", allow_unknown=True) == [vocabulary.index("t"), vocabulary.unknown_index]
    assert len(generator.generate("tΩ", length=4, allow_unknown=True, seed=0)[0]) == 6
    with pytest.raises(ValueError, match="prime is empty"):
        generator.generate("", length=3)
