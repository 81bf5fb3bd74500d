"""seqlab.embeddings: Word2Vec's updates against a float64 hand computation, its distributions against their
formulas, planted structure, subwords, the vectors' questions, the file formats (and gensim), evaluation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from seqlab.data.vocabulary import Vocabulary
from seqlab.embeddings import (SubwordHasher, Word2Vec, Word2VecFormatError, Word2VecSettings, WordVectors,
                               build_corpus, embedding_from_vectors, evaluate_analogies, evaluate_word_pairs,
                               load_vectors, read_word2vec, save_vectors, vectors_table, write_word2vec)
from seqlab.embeddings import torch_pass
from seqlab.embeddings.distributions import keep_probabilities, noise_probabilities, noise_table
from seqlab.embeddings.storage import VectorsDirectoryError
from seqlab.embeddings.subwords import fnv1a_32
from seqlab.kernels import fused

needs_kernel = pytest.mark.skipif(not fused.available(), reason="the C++ extension is not built here")


# ------------------------------------------------------------------ the update, by hand in float64
def hand_updates(pairs, input, output, negatives, alpha, cbow_mean=True):
    """Sequential SGD on -log σ(h·C_o) - Σ_n log σ(-h·C_n): each (bag of input rows with weights, positive, its
    negatives) applied in order; returns the new input, output and the summed loss."""
    W, C, loss = input.double().clone(), output.double().clone(), 0.0
    for (rows, weights, update_weights), positive, drawn in zip(pairs, [p[1] for p in negatives],
                                                                [p[2] for p in negatives]):
        h = sum(w * W[r] for r, w in zip(rows, weights))
        error = torch.zeros_like(h)
        for target, label in [(positive, 1.0)] + [(n, 0.0) for n in drawn if n != positive]:
            f = float(h @ C[target])
            sigmoid = 1 / (1 + math.exp(-f))
            loss += -math.log(sigmoid if label else 1 - sigmoid)
            g = (label - sigmoid) * alpha
            error += g * C[target]
            C[target] += g * h
        for r, u in zip(rows, update_weights):
            W[r] += u * error
    return W, C, loss


def test_the_negative_sampling_gradient_is_the_update_rule():
    """-∂L/∂h = Σ_k (label_k - σ(h·C_k)) C_k and -∂L/∂C_k = (label_k - σ(h·C_k)) h, by autograd in float64."""
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(6, dtype=torch.float64, generator=generator, requires_grad=True)
    C = torch.randn(4, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    labels = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    scores = C @ h
    loss = -(torch.nn.functional.logsigmoid(scores[:1]).sum() + torch.nn.functional.logsigmoid(-scores[1:]).sum())
    loss.backward()
    coefficient = (labels - torch.sigmoid(scores)).detach()
    torch.testing.assert_close(-h.grad, (coefficient[:, None] * C.detach()).sum(0))
    torch.testing.assert_close(-C.grad, coefficient[:, None] * h.detach()[None, :])


def tiny_problem(dim=5, words=4):
    generator = torch.Generator().manual_seed(3)
    input = torch.randn(words, dim, generator=generator) * 0.3
    output = torch.randn(words, dim, generator=generator) * 0.3
    noise = torch.tensor([0, 0, 0, 10], dtype=torch.int64)  # every draw is word 3
    return input, output, noise


@needs_kernel
@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_the_kernel_applies_each_pair_as_the_hand_computation_does(architecture):
    """Sentence [0, 1, 2], window 1 (so every reduced window is 1), negative 2 drawing word 3, no subsampling."""
    input, output, noise = tiny_problem()
    ids, starts, keep = torch.tensor([0, 1, 2], dtype=torch.int32), torch.tensor([0, 3]), torch.ones(4)
    alpha = 0.1
    if architecture == "skipgram":  # each context -> its centre, centres in reading order
        steps = [(([c], [1.0], [1.0]), o, [3, 3]) for c, o in [(1, 0), (0, 1), (2, 1), (1, 2)]]
    else:  # the mean of the contexts -> the centre
        steps = [(([1], [1.0], [1.0]), 0, [3, 3]), (([0, 2], [0.5, 0.5], [1.0, 1.0]), 1, [3, 3]),
                 (([1], [1.0], [1.0]), 2, [3, 3])]
    W, C, loss = hand_updates([s[0] for s in steps], input, output, steps, alpha)
    result = fused.extension().train_word2vec(ids, starts, keep, noise, input, output, None, None,
                                              architecture == "skipgram", 1, 2, True, alpha, alpha, 7, 1, True)
    torch.testing.assert_close(input.double(), W, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(output.double(), C, atol=1e-6, rtol=1e-5)
    assert result[0] == pytest.approx(loss, rel=1e-5)
    assert result[1:] == [len(steps) * 3, 3.0, 3.0]  # targets (a positive and two negatives each), kept, words


@needs_kernel
def test_with_subwords_the_input_is_the_mean_of_a_words_rows_and_each_row_takes_the_whole_error():
    input, output, noise = tiny_problem(words=6)  # rows 4 and 5: two n-gram buckets
    output = output[:4].contiguous()
    rows, row_starts = torch.tensor([0, 4, 5, 1, 5, 2, 3]), torch.tensor([0, 3, 5, 6, 7])
    ids, starts, keep = torch.tensor([0, 1], dtype=torch.int32), torch.tensor([0, 2]), torch.ones(4)
    bag = {0: [0, 4, 5], 1: [1, 5]}
    steps = [((bag[c], [1 / len(bag[c])] * len(bag[c]), [1.0] * len(bag[c])), o, [3]) for c, o in [(1, 0), (0, 1)]]
    W, C, _ = hand_updates([s[0] for s in steps], input, output, steps, 0.05)
    fused.extension().train_word2vec(ids, starts, keep, noise, input, output, row_starts, rows, True, 1, 1, True,
                                     0.05, 0.05, 7, 1, False)
    torch.testing.assert_close(input.double(), W, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(output.double(), C, atol=1e-6, rtol=1e-5)


def test_the_pytorch_pass_sums_a_batch_of_pairs_as_one_step():
    """The fallback's batch: every example's h and score from the same rows, the updates summed."""
    input, output, noise = tiny_problem()
    W0, C0 = input.double().clone(), output.double().clone()
    ids, starts, keep = torch.tensor([0, 1], dtype=torch.int32), torch.tensor([0, 2]), torch.ones(4)
    torch_pass.train_pass(ids, starts, keep, noise, input, output, None, None, skipgram=True, window=1, negative=1,
                          cbow_mean=True, alpha_begin=0.1, alpha_end=0.1, seed=0)
    expected_W, expected_C = W0.clone(), C0.clone()
    for centre, positive in [(1, 0), (0, 1)]:  # (the context's input row, the centre it predicts)
        h = W0[centre]
        for target, label in [(positive, 1.0), (3, 0.0)]:
            g = (label - torch.sigmoid(h @ C0[target])) * 0.1
            expected_W[centre] += g * C0[target]
            expected_C[target] += g * h
    torch.testing.assert_close(input.double(), expected_W, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(output.double(), expected_C, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ the distributions
def test_subsampling_keeps_each_word_with_word2vecs_probability():
    counts = torch.tensor([50_000, 5_000, 100, 1])
    keep = keep_probabilities(counts, 1e-3)
    total = float(counts.sum())
    for count, kept in zip(counts.tolist(), keep.tolist()):
        threshold = 1e-3 * total
        assert kept == pytest.approx(min(1.0, (math.sqrt(count / threshold) + 1) * threshold / count), rel=1e-6)
    assert keep_probabilities(counts, 0).tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="sample must be >= 0"):
        keep_probabilities(counts, -1)


@needs_kernel
def test_the_kernel_keeps_the_share_of_words_subsampling_says():
    ids = torch.zeros(200_000, dtype=torch.int32)
    keep = torch.tensor([0.3])
    result = fused.extension().train_word2vec(ids, torch.tensor([0, 200_000]), keep, torch.tensor([5]),
                                              torch.zeros(1, 2), torch.zeros(1, 2), None, None, True, 1, 1, True,
                                              0.0, 0.0, 1, 1, False)
    assert result[2] / 200_000 == pytest.approx(0.3, abs=5 * math.sqrt(0.3 * 0.7 / 200_000))


def test_the_noise_table_is_the_unigram_distribution_to_the_three_quarters():
    counts = torch.tensor([900, 90, 9, 1])
    table = noise_table(counts)
    shares = torch.diff(table, prepend=torch.zeros(1, dtype=torch.int64)).double() / float(table[-1])
    expected = counts.double() ** 0.75 / (counts.double() ** 0.75).sum()
    torch.testing.assert_close(shares, expected, atol=1e-9, rtol=0)
    torch.testing.assert_close(noise_probabilities(counts), expected)


@needs_kernel
def test_the_kernels_noise_draws_follow_the_table():
    """Input rows at zero, output rows one-hot and a learning rate small enough to stay linear: each negative
    draw of word j moves the centre's input row by -α σ(0) e_j, so the rows count the draws."""
    counts = torch.tensor([100, 50, 20, 5])
    pairs, negative, alpha = 4000, 5, 1e-5
    ids = torch.tensor([0, 1] * pairs, dtype=torch.int32)
    starts = torch.arange(0, 2 * pairs + 1, 2)
    input, output = torch.zeros(4, 4), torch.eye(4)
    fused.extension().train_word2vec(ids, starts, torch.ones(4), noise_table(counts), input, output, None, None,
                                     True, 1, negative, True, alpha, alpha, 11, 1, False)
    draws = -input / (0.5 * alpha)  # row 0 counts the draws of 0, 2, 3 (1 is its positive); row 1 those of 1, 2, 3
    observed = torch.stack([draws[0, 0], draws[1, 1], draws[0, 2] + draws[1, 2], draws[0, 3] + draws[1, 3]])
    p = noise_probabilities(counts)
    expected = torch.stack([pairs * negative * p[0], pairs * negative * p[1], 2 * pairs * negative * p[2],
                            2 * pairs * negative * p[3]]).float()
    assert torch.all((observed - expected).abs() < 5 * expected.sqrt() + 0.02 * expected), (observed, expected)


# ------------------------------------------------------------------ training finds planted structure
def planted_corpus(sentences: int, seed: int = 0) -> list[list[str]]:
    """Two families (a*, b*) that each keep their own company (x*, y*)."""
    rng = random.Random(seed)
    family = {"a": [f"a{i}" for i in range(5)], "b": [f"b{i}" for i in range(5)]}
    company = {"a": [f"x{i}" for i in range(10)], "b": [f"y{i}" for i in range(10)]}
    corpus = []
    for _ in range(sentences):
        f = rng.choice("ab")
        corpus.append([rng.choice(company[f]) if j % 2 else rng.choice(family[f]) for j in range(12)])
    return corpus


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
@pytest.mark.parametrize("subwords", [False, True])
@pytest.mark.parametrize("kernel", [pytest.param(True, marks=needs_kernel), False])
def test_trained_vectors_rank_a_words_family_nearest(architecture, subwords, kernel):
    settings = Word2VecSettings(architecture=architecture, dim=16, epochs=3, min_count=1, sample=0, threads=1,
                                subwords=subwords, buckets=5000)
    vectors = Word2Vec(settings, use_kernel=kernel).fit(planted_corpus(3000 if kernel else 500))
    for word in ("a0", "b3"):
        nearest = [w for w, _ in vectors.most_similar(word, topn=4)]
        assert all(w[0] == word[0] for w in nearest), nearest
    assert vectors.similarity("a0", "a1") > vectors.similarity("a0", "b1") + 0.3


@needs_kernel
def test_one_thread_gives_the_same_vectors_on_every_run():
    settings = Word2VecSettings(dim=8, epochs=2, min_count=1, threads=1)
    first = Word2Vec(settings).fit(planted_corpus(300))
    second = Word2Vec(settings).fit(planted_corpus(300))
    assert torch.equal(first.vectors, second.vectors)


def test_the_corpus_drops_rare_words_and_numbers_by_count():
    vocabulary, corpus = build_corpus([["b", "a", "b", "c"], ["a", "b", "d"]], min_count=2)
    assert vocabulary.words == ["b", "a"] and vocabulary.counts == [3, 2] and vocabulary.corpus_words == 7
    assert corpus.ids.tolist() == [0, 1, 0, 1, 0] and corpus.sentence_starts.tolist() == [0, 3, 5]


def test_bad_corpora_get_clear_errors():
    with pytest.raises(ValueError, match=r"the corpus has no words \(2 texts, all empty\)"):
        build_corpus([[], []])
    with pytest.raises(ValueError, match=r"no word occurs 5 times or more \(the most frequent, 'a', occurs 2\)"):
        build_corpus([["a", "b", "a"]], min_count=5)
    with pytest.raises(TypeError, match="takes tokenized texts"):
        build_corpus(["a whole text"])
    with pytest.raises(ValueError, match="unknown architecture 'glove'"):
        Word2VecSettings(architecture="glove")
    with pytest.raises(ValueError, match="negative must be at least 1"):
        Word2VecSettings(negative=0)
    with pytest.raises(RuntimeError, match=r"needs a corpus: call fit\(token_lists\)"):
        Word2Vec().vectors()


# ------------------------------------------------------------------ subwords
def test_ngrams_and_their_hash_are_fasttexts():
    hasher = SubwordHasher(3, 4, 2_000_000)
    assert hasher.ngrams("cat") == ["<ca", "cat", "at>", "<cat", "cat>"]
    assert SubwordHasher(3, 3).ngrams("먹었다") == ["<먹었", "먹었다", "었다>"]
    assert fnv1a_32(b"") == 2166136261
    assert fnv1a_32("학교".encode()) == 41459021  # gensim.models.fasttext.ft_hash_bytes gives the same
    with pytest.raises(ValueError, match="1 <= min_n <= max_n"):
        SubwordHasher(5, 3)


def test_fnv_hash_agrees_with_gensims_where_installed():
    fasttext = pytest.importorskip("gensim.models.fasttext")
    for word in ("<wh", "whe", "ère>", "<학교에", "서는>"):
        assert fnv1a_32(word.encode()) == fasttext.ft_hash_bytes(word.encode())


# ------------------------------------------------------------------ the vectors
def hand_vectors() -> WordVectors:
    words = ["man", "woman", "king", "queen", "apple", "car"]
    matrix = torch.tensor([[1.0, 0, 0, 0.1], [1, 1, 0, 0.1], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1],
                           [0, -1, 0.2, -0.1]])
    return WordVectors(words, matrix, [6, 5, 4, 3, 2, 1])


def test_analogies_by_3cosadd_and_3cosmul_on_hand_made_vectors():
    vectors = hand_vectors()
    assert vectors.analogy("man", "king", "woman") == "queen"
    assert vectors.analogy("man", "king", "woman", method="3cosmul") == "queen"
    unit = torch.nn.functional.normalize(vectors.vectors, dim=1)
    target = torch.nn.functional.normalize(unit[2] - unit[0] + unit[1], dim=0)
    answer = vectors.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0]
    assert answer[1] == pytest.approx(float(unit[3] @ target), abs=1e-6)
    shifted = [(1 + float(unit[3] @ unit[i])) / 2 for i in (2, 1, 0)]
    cosmul = vectors.most_similar(positive=["king", "woman"], negative=["man"], topn=1, method="3cosmul")[0]
    assert cosmul[1] == pytest.approx(shifted[0] * shifted[1] / (shifted[2] + 1e-6), rel=1e-5)


def test_neighbours_similarity_and_the_odd_one_out():
    vectors = hand_vectors()
    assert vectors.similarity("man", "woman") == pytest.approx(1.01 / (math.sqrt(1.01) * math.sqrt(2.01)), rel=1e-6)
    neighbours = vectors.most_similar("king", topn=3)
    assert [w for w, _ in neighbours][0] == "queen" and "king" not in [w for w, _ in neighbours]
    assert vectors.most_similar(vectors["king"], topn=1)[0][0] == "king"  # a vector excludes nothing
    assert vectors.doesnt_match(["man", "woman", "king", "apple"]) == "apple"
    assert "king" in vectors and "emperor" not in vectors and vectors.count("queen") == 3
    with pytest.raises(KeyError, match="'emperor' is not in the vocabulary of 6 words; train with subwords"):
        vectors["emperor"]
    with pytest.raises(ValueError, match="unknown method"):
        vectors.most_similar("king", method="cosine")


def test_unknown_words_get_the_mean_of_their_known_ngrams_with_subwords():
    hasher = SubwordHasher(3, 3, 100)
    buckets = torch.tensor(sorted(set(hasher.buckets_of("cats"))))
    ngram_vectors = torch.arange(len(buckets) * 2, dtype=torch.float32).reshape(-1, 2)
    vectors = WordVectors(["cats"], torch.ones(1, 2), subwords=hasher, ngram_vectors=ngram_vectors, buckets=buckets)
    place = {int(b): i for i, b in enumerate(buckets.tolist())}
    known = [place[b] for b in hasher.buckets_of("cat") if b in place]  # <ca, cat (at> is cats' ats?)
    torch.testing.assert_close(vectors.vector("cat"), ngram_vectors[known].mean(0))
    assert "cat" not in vectors and vectors.has_vector("cat")
    with pytest.raises(KeyError, match="none of its character n-grams was seen in training"):
        vectors.vector("zzz")


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_files_round_trip(tmp_path, binary):
    vectors = WordVectors(["über", "café", "한국어"], torch.randn(3, 7))
    write_word2vec(vectors, tmp_path / "v", binary=binary)
    read = read_word2vec(tmp_path / "v")  # the format told apart by its bytes
    assert read.words == vectors.words
    torch.testing.assert_close(read.vectors, vectors.vectors, atol=0 if binary else 1e-7, rtol=0 if binary else 1e-6)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_seqlabs_files_and_seqlab_reads_gensims(tmp_path, binary):
    models = pytest.importorskip("gensim.models")
    vectors = WordVectors(["the", "über", "한국어", "x"], torch.randn(4, 5))
    write_word2vec(vectors, tmp_path / "ours", binary=binary)
    keyed = models.KeyedVectors.load_word2vec_format(str(tmp_path / "ours"), binary=binary)
    assert list(keyed.index_to_key) == vectors.words
    np.testing.assert_allclose(keyed.vectors, vectors.vectors.numpy(), rtol=1e-6, atol=1e-7)
    keyed.save_word2vec_format(str(tmp_path / "theirs"), binary=binary)
    read = read_word2vec(tmp_path / "theirs", binary=binary)
    assert read.words == vectors.words
    torch.testing.assert_close(read.vectors, vectors.vectors, rtol=1e-6, atol=1e-7)


def test_damaged_word2vec_files_get_clear_errors(tmp_path):
    (tmp_path / "a").write_text("hello world\n")
    with pytest.raises(Word2VecFormatError, match="the first line must be 'WORDS DIMENSIONS'"):
        read_word2vec(tmp_path / "a")
    write_word2vec(WordVectors(["a", "b"], torch.ones(2, 3)), tmp_path / "b", binary=True)
    (tmp_path / "c").write_bytes((tmp_path / "b").read_bytes()[:-6])
    with pytest.raises(Word2VecFormatError, match="ends inside word 2 of 2"):
        read_word2vec(tmp_path / "c", binary=True)
    (tmp_path / "d").write_text("2 3\na 1 2 3\n")
    with pytest.raises(Word2VecFormatError, match="promises 2 words, the file has 1 lines"):
        read_word2vec(tmp_path / "d", binary=False)
    with pytest.raises(ValueError, match="whitespace"):
        write_word2vec(WordVectors(["a b"], torch.ones(1, 2)), tmp_path / "e")


def test_vectors_save_and_load_with_subwords(tmp_path):
    vectors = Word2Vec(Word2VecSettings(dim=6, epochs=1, min_count=1, subwords=True, buckets=1000, threads=1)
                       ).fit(planted_corpus(50))
    save_vectors(vectors, tmp_path / "v", training={"note": "x"})
    (tmp_path / "v" / "README").write_text("mine\n")
    save_vectors(vectors, tmp_path / "v")  # again: the user's file stays
    loaded = load_vectors(tmp_path / "v")
    assert loaded.words == vectors.words and loaded.counts == vectors.counts
    assert torch.equal(loaded.vectors, vectors.vectors) and torch.equal(loaded.vector("a00"), vectors.vector("a00"))
    assert (tmp_path / "v" / "README").read_text() == "mine\n"
    (tmp_path / "v" / "vectors.safetensors").write_bytes(b"garbage")
    with pytest.raises(VectorsDirectoryError, match="is damaged"):
        load_vectors(tmp_path / "v")
    with pytest.raises(VectorsDirectoryError, match="holds no vectors.json"):
        load_vectors(tmp_path)


# ------------------------------------------------------------------ evaluation: gensim's protocol
def test_word_pair_and_analogy_scores_equal_gensims_on_the_same_vectors(tmp_path):
    models = pytest.importorskip("gensim.models")
    from seqlab.embeddings import benchmark_file

    words = sorted({w.lower() for line in benchmark_file("questions-words.txt").read_text().split()
                    for w in [line] if not line.startswith(":")})[:400]
    words += sorted({w.lower() for line in benchmark_file("wordsim353.tsv").read_text().splitlines()
                     if not line.startswith("#") for w in line.split("\t")[:2]})
    words = list(dict.fromkeys(words))
    generator = torch.Generator().manual_seed(0)
    vectors = WordVectors(words, torch.randn(len(words), 10, generator=generator))
    keyed = models.KeyedVectors(10)
    keyed.add_vectors(words, vectors.vectors.numpy())
    pairs = evaluate_word_pairs(vectors, benchmark_file("wordsim353.tsv"))
    theirs = keyed.evaluate_word_pairs(benchmark_file("wordsim353.tsv"))
    assert pairs.spearman == pytest.approx(theirs[1].statistic, abs=1e-9)
    assert pairs.pearson == pytest.approx(theirs[0].statistic, abs=1e-6)
    assert pairs.oov_share * 100 == pytest.approx(theirs[2])
    analogies = evaluate_analogies(vectors, benchmark_file("questions-words.txt"))
    assert analogies.accuracy == pytest.approx(keyed.evaluate_word_analogies(benchmark_file("questions-words.txt"))[0])
    assert analogies.questions > 0


# ------------------------------------------------------------------ into a model
def test_an_embedding_layer_starts_from_the_vectors():
    vectors = hand_vectors()
    vocabulary = Vocabulary(["king", "queen", "emperor"], specials=["<sos>"])
    layer, found = embedding_from_vectors(vectors, vocabulary, trainable=False)
    table = layer.embeddings.detach()
    assert table.shape == (len(vocabulary), 4) and found == pytest.approx(2 / 3)
    assert torch.equal(table[0], torch.zeros(4))  # padding
    assert torch.equal(table[vocabulary.index("king")], vectors["king"])
    assert torch.equal(table[vocabulary.index("queen")], vectors["queen"])
    assert float(table[vocabulary.index("emperor")].abs().sum()) > 0  # drawn at the vectors' scale
    assert not layer.embeddings.requires_grad and layer.mask_zero
    assert layer(torch.tensor([[vocabulary.index("king"), 0]])).shape == (1, 2, 4)


def test_a_word_bigram_token_starts_at_the_mean_of_its_words():
    vectors = hand_vectors()
    vocabulary = Vocabulary(["king", "king queen", "king emperor"])
    table, found = vectors_table(vectors, vocabulary)
    torch.testing.assert_close(table[vocabulary.index("king queen")], (vectors["king"] + vectors["queen"]) / 2)
    assert found == pytest.approx(1 / 3)  # only 'king' itself has a vector of its own
    assert not torch.equal(table[vocabulary.index("king emperor")], vectors["king"] / 2)
