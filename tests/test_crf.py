"""The linear-chain CRF: log Z, likelihoods and Viterbi against brute-force enumeration of every
tag path, constraints (BIO), gradients, masks, clear errors, configs, and learning transitions."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

import seqlab
from seqlab import layers
from seqlab.layers import CRF, bio_constraints, viterbi_decode

NER_TAGS = ["<pad>", "O", "B-PS", "I-PS", "B-LC", "I-LC"]


def right_padded_mask(lengths, time):
    return torch.arange(time)[None, :] < torch.tensor(lengths)[:, None]


def random_crf(num_tags, seed, **kwargs):
    """A built float64 CRF with weights ~ N(0, 1), larger than the initial ones, so paths differ clearly."""
    generator = torch.Generator().manual_seed(seed)
    crf = CRF(num_tags, dtype="float64", **kwargs)
    crf.build((None, None, num_tags))
    crf.set_weights([torch.randn(w.shape, generator=generator, dtype=torch.float64) for w in crf.weights])
    return crf


def path_score(emissions, path, transitions, start, end):
    """s(y) written out by hand, in Python floats."""
    if not path:
        return 0.0
    score = float(start[path[0]]) + float(end[path[-1]])
    score += sum(float(emissions[t, tag]) for t, tag in enumerate(path))
    return score + sum(float(transitions[a, b]) for a, b in zip(path, path[1:]))


def allowed_path(path, allowed):
    transitions, start, end = allowed
    return not path or (bool(start[path[0]]) and bool(end[path[-1]])
                        and all(bool(transitions[a, b]) for a, b in zip(path, path[1:])))


def enumerated(crf, emissions, lengths, allowed=None):
    """For each row: {path: score} over every tag path of its length (the allowed ones only)."""
    transitions, start, end = (w.detach() for w in crf.weights)
    rows = []
    for row, length in enumerate(lengths):
        paths = [p for p in itertools.product(range(crf.num_tags), repeat=length)
                 if allowed is None or allowed_path(p, allowed)]
        rows.append({p: path_score(emissions[row], p, transitions, start, end) for p in paths})
    return rows


def log_sum_exp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


CASES = [(3, [4, 1, 0], 0), (4, [3, 4, 2], 1), (4, [1, 0, 4], 2), (3, [2, 2, 2], 3)]


# ------------------------------------------------------------------ against enumeration
@pytest.mark.parametrize("num_tags, lengths, seed", CASES)
def test_log_partition_is_the_log_sum_exp_over_every_tag_path(num_tags, lengths, seed):
    crf = random_crf(num_tags, seed)
    emissions = torch.randn(3, 4, num_tags, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    log_z = crf.log_partition(emissions, right_padded_mask(lengths, 4)).detach()
    for row, scores in enumerate(enumerated(crf, emissions, lengths)):
        assert len(scores) == num_tags ** lengths[row]
        assert float(log_z[row]) == pytest.approx(log_sum_exp(scores.values()), abs=1e-10)
    assert all(float(log_z[row]) == 0.0 for row, length in enumerate(lengths) if length == 0)


@pytest.mark.parametrize("num_tags, lengths, seed", CASES)
def test_log_likelihood_is_the_path_score_minus_log_z(num_tags, lengths, seed):
    crf = random_crf(num_tags, seed)
    generator = torch.Generator().manual_seed(seed + 10)
    emissions = torch.randn(3, 4, num_tags, dtype=torch.float64, generator=generator)
    mask = right_padded_mask(lengths, 4)
    tags = torch.randint(0, num_tags, (3, 4), generator=generator).masked_fill(~mask, -100)  # padding: any value
    log_likelihood = crf.log_likelihood(emissions, tags, mask).detach()
    for row, scores in enumerate(enumerated(crf, emissions, lengths)):
        gold = tuple(tags[row, :lengths[row]].tolist())
        expected = scores[gold] - log_sum_exp(scores.values())
        assert float(log_likelihood[row]) == pytest.approx(expected, abs=1e-10)
    torch.testing.assert_close(crf.negative_log_likelihood(emissions, tags, mask), -log_likelihood)
    assert bool((log_likelihood <= 1e-12).all())


@pytest.mark.parametrize("num_tags, lengths, seed", CASES)
def test_decode_is_the_arg_max_path_and_its_score(num_tags, lengths, seed):
    crf = random_crf(num_tags, seed)
    emissions = torch.randn(3, 4, num_tags, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    mask = right_padded_mask(lengths, 4)
    paths, scores = (t.detach() for t in crf.decode(emissions, mask))
    assert paths.dtype == torch.int64 and paths.shape == (3, 4)
    for row, enumeration in enumerate(enumerated(crf, emissions, lengths)):
        best = max(enumeration, key=enumeration.get)
        assert paths[row].tolist() == list(best) + [0] * (4 - lengths[row])
        assert float(scores[row]) == pytest.approx(enumeration[best], abs=1e-10)
    assert torch.equal(crf(emissions, mask=mask), paths)


def test_an_empty_row_has_likelihood_zero_and_decodes_to_zeros():
    crf = random_crf(3, 5)
    emissions = torch.randn(2, 3, 3, dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    tags = torch.tensor([[2, 1, 0], [2, 2, 2]])
    assert crf.log_likelihood(emissions, tags, mask)[1].item() == 0.0
    assert crf.log_partition(emissions, mask)[1].item() == 0.0
    paths, scores = crf.decode(emissions, mask)
    assert paths[1].tolist() == [0, 0, 0] and scores[1].item() == 0.0 and paths[0, 2].item() == 0
    empty_paths, empty_scores = crf.decode(torch.randn(2, 0, 3, dtype=torch.float64))
    assert empty_paths.shape == (2, 0) and empty_scores.tolist() == [0.0, 0.0]


# ------------------------------------------------------------------ constraints
def test_bio_constraints_on_the_tagging_app_tags():
    transitions, start, end = bio_constraints(NER_TAGS, excluded=[0])
    assert transitions.dtype == torch.bool and transitions.shape == (6, 6) and start.shape == end.shape == (6,)
    pad, outside, b_ps, i_ps, b_lc, i_lc = range(6)
    assert start.tolist() == [False, True, True, False, True, False]
    assert end.tolist() == [False, True, True, True, True, True]
    assert not transitions[pad].any() and not transitions[:, pad].any()
    for source, target in [(b_ps, i_ps), (i_ps, i_ps), (b_lc, i_lc), (i_lc, i_lc), (outside, outside),
                           (outside, b_ps), (i_ps, outside), (i_ps, b_lc), (b_ps, b_ps), (i_lc, b_ps)]:
        assert transitions[source, target], (NER_TAGS[source], NER_TAGS[target])
    for source, target in [(outside, i_ps), (outside, i_lc), (b_ps, i_lc), (i_ps, i_lc), (b_lc, i_ps),
                           (i_lc, i_ps)]:
        assert not transitions[source, target], (NER_TAGS[source], NER_TAGS[target])
    assert int(transitions.sum()) == 5 * 5 - 6   # every move among the 5 real tags but the six listed


def test_bio_constraints_name_a_bad_tag():
    with pytest.raises(ValueError, match="'<pad>' at index 0"):
        bio_constraints(NER_TAGS)
    with pytest.raises(ValueError, match="'X-PS'"):
        bio_constraints(["O", "B-PS", "X-PS"])
    with pytest.raises(ValueError, match="'B-'"):
        bio_constraints(["O", "B-"])
    with pytest.raises(ValueError, match="excluded"):
        bio_constraints(["O"], excluded=[3])


@pytest.mark.parametrize("lengths, seed", [([4, 1, 0], 0), ([3, 4, 2], 1)])
def test_constrained_crf_counts_only_the_allowed_paths(lengths, seed):
    allowed = bio_constraints(NER_TAGS, excluded=[0])
    crf = random_crf(6, seed, allowed_transitions=allowed[0], allowed_start=allowed[1], allowed_end=allowed[2])
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(3, 4, 6, dtype=torch.float64, generator=generator)
    mask = right_padded_mask(lengths, 4)
    with torch.no_grad():
        log_z, (paths, scores) = crf.log_partition(emissions, mask), crf.decode(emissions, mask)
    gold = torch.tensor([[1, 2, 3, 3], [4, 5, 1, 2], [2, 3, 1, 1]])   # allowed paths, cut to each length
    log_likelihood = crf.log_likelihood(emissions, gold, mask).detach()
    for row, enumeration in enumerate(enumerated(crf, emissions, lengths, allowed)):
        assert float(log_z[row]) == pytest.approx(log_sum_exp(enumeration.values()) if lengths[row] else 0.0,
                                                  abs=1e-10)
        best = max(enumeration, key=enumeration.get)
        assert paths[row, :lengths[row]].tolist() == list(best)
        assert float(scores[row]) == pytest.approx(enumeration[best], abs=1e-10)
        expected = enumeration[tuple(gold[row, :lengths[row]].tolist())] - float(log_z[row])
        assert float(log_likelihood[row]) == pytest.approx(expected, abs=1e-10)
    forbidden = torch.tensor([[1, 3, 3, 3]])   # O -> I-PS
    assert crf.log_likelihood(emissions[:1], forbidden).item() == -math.inf


def test_decoding_never_emits_a_forbidden_move_even_when_the_emissions_want_one():
    allowed = bio_constraints(NER_TAGS, excluded=[0])
    crf = CRF(6, *allowed, dtype="float64")
    emissions = torch.randn(64, 9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    emissions[..., [0, 3, 5]] += 4.0   # the padding and I- tags look best at every step
    lengths = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    mask = torch.arange(9)[None, :] < lengths[:, None]
    paths = crf(emissions, mask=mask)
    for row, length in enumerate(lengths.tolist()):
        assert allowed_path(paths[row, :length].tolist(), allowed), paths[row]
    greedy = emissions.argmax(-1)
    assert not all(allowed_path(greedy[row, :n].tolist(), allowed) for row, n in enumerate(lengths.tolist()))
    with torch.no_grad():   # the learned weights cannot make a forbidden move possible
        crf.transitions[1, 3] = 1e6
    assert not ((crf(emissions, mask=mask)[:, :-1] == 1) & (crf(emissions, mask=mask)[:, 1:] == 3)).any()


def test_viterbi_decode_constrains_a_softmax_tagger():
    allowed_transitions, allowed_start, allowed_end = bio_constraints(NER_TAGS, excluded=[0])
    blocked = [torch.zeros(a.shape, dtype=torch.float64).masked_fill(~a, -math.inf)
               for a in (allowed_transitions, allowed_start, allowed_end)]
    log_probabilities = torch.randn(3, 4, 6, dtype=torch.float64).log_softmax(-1)
    lengths = [4, 2, 0]
    paths, scores = viterbi_decode(log_probabilities, right_padded_mask(lengths, 4), *blocked)
    for row, length in enumerate(lengths):
        candidates = [p for p in itertools.product(range(6), repeat=length)
                      if allowed_path(p, (allowed_transitions, allowed_start, allowed_end))]
        best = max(candidates, key=lambda p: sum(float(log_probabilities[row, t, y]) for t, y in enumerate(p)))
        assert paths[row].tolist() == list(best) + [0] * (4 - length)
        expected = sum(float(log_probabilities[row, t, y]) for t, y in enumerate(best))
        assert float(scores[row]) == pytest.approx(expected, abs=1e-10)
    with pytest.raises(ValueError, match=r"transitions must be \(K, K\) for the emissions' K = 6"):
        viterbi_decode(log_probabilities, None, blocked[0][:5], blocked[1], blocked[2])


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("constrained", [False, True])
def test_gradcheck_of_the_log_likelihood(constrained):
    # With an excluded (padding) tag no state can reach it: torch.logsumexp's gradient there is NaN.
    allowed = bio_constraints(NER_TAGS, excluded=[0]) if constrained else (None, None, None)
    num_tags = 6 if constrained else 3
    crf = random_crf(num_tags, 7, allowed_transitions=allowed[0], allowed_start=allowed[1], allowed_end=allowed[2])
    mask = right_padded_mask([3, 1, 0], 3)
    tags = torch.tensor([[1, 2, 3], [4, 0, 0], [0, 0, 0]] if constrained else [[0, 1, 2], [1, 0, 0], [0, 0, 0]])

    class LogLikelihood(torch.nn.Module):   # so functional_call can swap the CRF's weights for the inputs
        def __init__(self):
            super().__init__()
            self.crf = crf

        def forward(self, emissions, tags, mask):
            return self.crf.log_likelihood(emissions, tags, mask)

    model = LogLikelihood()

    def log_likelihood(emissions, transitions, start, end):
        weights = {"crf.transitions": transitions, "crf.start_transitions": start, "crf.end_transitions": end}
        return torch.func.functional_call(model, weights, (emissions, tags, mask))

    inputs = [torch.randn(3, 3, num_tags, dtype=torch.float64, requires_grad=True)]
    inputs += [w.detach().clone().requires_grad_() for w in crf.weights]
    assert torch.autograd.gradcheck(log_likelihood, inputs)
    crf.log_likelihood(inputs[0], tags, mask).sum().backward()
    assert all(torch.isfinite(w.grad).all() for w in crf.weights)
    if constrained:   # a forbidden move's learned score gets no gradient
        assert crf.transitions.grad[1, 3] == 0.0 and crf.start_transitions.grad[3] == 0.0
        assert not crf.transitions.grad[:, 0].any() and crf.end_transitions.grad[0] == 0.0


# ------------------------------------------------------------------ masks, dtypes, errors, configs
def test_the_layer_reads_the_mask_its_input_carries_and_passes_it_on():
    crf = random_crf(4, 3)
    emissions = torch.randn(2, 5, 4, dtype=torch.float64)
    mask = right_padded_mask([5, 2], 5)
    emissions._keras_mask = mask
    paths = crf(emissions)
    assert torch.equal(paths, crf.decode(emissions.detach().clone(), mask)[0])
    assert paths[1, 2:].tolist() == [0, 0, 0] and paths._keras_mask is mask
    torch.testing.assert_close(crf.log_partition(emissions), crf.log_partition(emissions.detach().clone(), mask))


def test_float32_agrees_with_float64():
    crf64 = random_crf(4, 4)
    crf32 = CRF(4)
    emissions = torch.randn(3, 6, 4, dtype=torch.float64)
    tags = torch.randint(0, 4, (3, 6))
    mask = right_padded_mask([6, 3, 0], 6)
    crf32.build_like(emissions.float())
    crf32.set_weights(crf64.get_weights())
    assert crf32.transitions.dtype == torch.float32
    log_likelihood = crf32.log_likelihood(emissions.float(), tags, mask)
    assert log_likelihood.dtype == torch.float32
    torch.testing.assert_close(log_likelihood.double(), crf64.log_likelihood(emissions, tags, mask),
                               rtol=0, atol=1e-5)
    assert torch.equal(crf32(emissions.float(), mask=mask), crf64(emissions, mask=mask))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_the_emissions_device():
    allowed = bio_constraints(NER_TAGS, excluded=[0])
    crf = random_crf(6, 0, allowed_transitions=allowed[0], allowed_start=allowed[1], allowed_end=allowed[2])
    emissions, tags = torch.randn(4, 5, 6, dtype=torch.float64), torch.tensor([[1, 2, 3, 1, 4]] * 4)
    mask = right_padded_mask([5, 3, 1, 0], 5)
    expected = crf.log_likelihood(emissions, tags, mask), crf.decode(emissions, mask)
    crf.cuda()
    log_likelihood = crf.log_likelihood(emissions.cuda(), tags.cuda(), mask.cuda())
    paths, scores = crf.decode(emissions.cuda(), mask.cuda())
    assert log_likelihood.device.type == paths.device.type == "cuda"
    torch.testing.assert_close(log_likelihood.cpu(), expected[0])
    assert torch.equal(paths.cpu(), expected[1][0])
    torch.testing.assert_close(scores.cpu(), expected[1][1])


@pytest.mark.parametrize("make, match", [
    (lambda: CRF(4).decode(torch.randn(2, 3, 4), torch.tensor([[1, 0, 1], [1, 1, 0]]).bool()), "row 0"),
    (lambda: CRF(4).decode(torch.randn(2, 3, 4), torch.tensor([[0, 1, 1], [1, 1, 0]])), "right padding"),
    (lambda: CRF(4).decode(torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool)), r"\(batch, time\)"),
    (lambda: CRF(4).build((None, None, 5)), "num_tags=4"),
    (lambda: CRF(4)(torch.randn(2, 3, 5)), "num_tags=4"),
    (lambda: CRF(0), "positive"),
    (lambda: CRF(3, allowed_transitions=[[True] * 3] * 2), r"allowed_transitions must have shape \(3, 3\)"),
    (lambda: CRF(3, allowed_start=[True, False]), r"allowed_start must have shape \(3,\)"),
    (lambda: CRF(3, allowed_end=[0.5, 1.0, 1.0]), "booleans"),
    (lambda: CRF(3).log_likelihood(torch.randn(1, 2, 3), torch.tensor([[0, 3]])), r"\[0, 3\)"),
    (lambda: CRF(3).log_likelihood(torch.randn(1, 2, 3), torch.tensor([[0, 1, 2]])), "tags must be"),
])
def test_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_config_round_trip_keeps_the_constraints():
    allowed = bio_constraints(NER_TAGS, excluded=[0])
    crf = random_crf(6, 2, allowed_transitions=allowed[0], allowed_start=allowed[1], allowed_end=allowed[2],
                     name="tagger_crf")
    config = json.loads(json.dumps(crf.get_config()))
    assert config["num_tags"] == 6 and config["name"] == "tagger_crf"
    assert config["allowed_transitions"] == allowed[0].tolist() and config["allowed_start"] == allowed[1].tolist()
    emissions = torch.randn(8, 5, 6, dtype=torch.float64)
    emissions[..., 3] += 5.0
    for copy in (CRF.from_config(config), layers.deserialize(json.loads(json.dumps(layers.serialize(crf))))):
        copy.build((None, None, 6))
        copy.set_weights(crf.get_weights())
        assert copy.get_config() == crf.get_config()
        assert torch.equal(copy(emissions), crf(emissions))
        torch.testing.assert_close(copy.log_partition(emissions), crf.log_partition(emissions))
        assert sorted(copy.state_dict()) == ["end_transitions", "start_transitions", "transitions"]
    assert CRF(3).get_config()["allowed_transitions"] is None


def test_a_saved_model_reloads_with_its_constraints(tmp_path):
    allowed = bio_constraints(NER_TAGS, excluded=[0])
    model = seqlab.Sequential([layers.Dense(6), CRF(6, *allowed)])
    inputs = torch.randn(16, 5, 3)
    with torch.no_grad():
        model.layers[0](inputs)
        model.layers[0].kernel[:, [3, 5]] += 10.0   # the I- tags look best everywhere
    paths = model(inputs)
    model.save(tmp_path / "tagger")
    loaded = seqlab.load_model(tmp_path / "tagger")
    assert torch.equal(loaded(inputs), paths)
    assert torch.equal(loaded.layers[1].transitions_penalty, model.layers[1].transitions_penalty)
    assert all(allowed_path(row.tolist(), allowed) for row in paths)


# ------------------------------------------------------------------ learning
def test_training_learns_the_transitions():
    """Tag t+1 = (tag t + 1) mod 4: the emissions tell the first tag only, noise after it."""
    torch.manual_seed(0)

    def toy(batch, time=8):
        first = torch.randint(0, 4, (batch, 1))
        tags = (first + torch.arange(time)[None, :]) % 4
        emissions = 0.3 * torch.randn(batch, time, 4)
        emissions[:, 0] += 5.0 * torch.nn.functional.one_hot(first[:, 0], 4)
        lengths = torch.randint(1, time + 1, (batch,))
        return emissions, tags, torch.arange(time)[None, :] < lengths[:, None]

    crf = CRF(4)
    train, test = toy(256), toy(256)
    crf.build_like(train[0])
    accuracy = lambda: float((crf(test[0], mask=test[2]) == test[1])[test[2]].float().mean())  # noqa: E731
    before = accuracy()
    optimizer = torch.optim.Adam(crf.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        crf.negative_log_likelihood(*train).mean().backward()
        optimizer.step()
    assert before < 0.6
    assert accuracy() == 1.0
    assert crf.transitions.argmax(dim=1).tolist() == [1, 2, 3, 0]
