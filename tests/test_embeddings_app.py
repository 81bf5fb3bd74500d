"""`seqlab embeddings ...` and the sentiment app's `--embeddings`: exact resume, the commands' outputs, Korean
word forms through subwords."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest
import torch

from seqlab.cli import main
from seqlab.embeddings import Word2Vec, Word2VecSettings, load_vectors
from seqlab.saving import load_model

WORDS = {"pos": ["good", "great", "fine", "lovely"], "neg": ["bad", "awful", "dull", "boring"]}
FILLER = "the a film plot was acting story".split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A text of reviews (one a line) and the same reviews as a labelled CSV."""
    work = tmp_path_factory.mktemp("embeddings")
    rng = random.Random(0)
    lines, rows = [], ["text,label"]
    for i in range(400):
        label = ("neg", "pos")[i % 2]
        words = rng.choices(FILLER, k=4) + rng.choices(WORDS[label], k=3)
        rng.shuffle(words)
        lines.append(" ".join(words))
        rows.append(f"{' '.join(words)},{label}")
    (work / "reviews.txt").write_text("\n".join(lines) + "\n")
    (work / "reviews.csv").write_text("\n".join(rows) + "\n")
    return work


def train_argv(corpus, out, *more):
    return ["embeddings", "train", "--corpus", f"text:{corpus}/reviews.txt", "--min-count", "1", "--dim", "12",
            "--epochs", "3", "--threads", "1", "--verbose", "0", "--sample", "0", "--out", str(out), *more]


def log_rows(out):
    with open(out / "log.csv") as file:
        return [{k: v for k, v in row.items() if k not in ("seconds", "words_per_second")}
                for row in csv.DictReader(file)]


def interrupt_the_second_epoch(monkeypatch) -> None:
    """Ctrl-C as the second epoch starts (the first one saved)."""
    calls = {"n": 0}
    original = Word2Vec.train_epoch

    def interrupted(self, progress=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, progress)

    monkeypatch.setattr(Word2Vec, "train_epoch", interrupted)


def test_an_interrupted_run_resumed_ends_bit_for_bit_where_an_uninterrupted_one_ends(corpus, tmp_path, monkeypatch,
                                                                                      capsys):
    assert main(train_argv(corpus, tmp_path / "whole")) == 0
    interrupt_the_second_epoch(monkeypatch)
    assert main(train_argv(corpus, tmp_path / "cut")) == 130
    assert "The last completed epoch (1) is saved" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["embeddings", "train", "--resume", "--out", str(tmp_path / "cut"), "--verbose", "0"]) == 0
    commands = (tmp_path / "cut" / "command.txt").read_text().splitlines()
    assert len(commands) == 2 and commands[0].startswith("seqlab embeddings train --corpus text:")
    assert commands[1] == f"seqlab embeddings train --out {tmp_path / 'cut'} --resume --verbose 0"
    whole, cut = load_vectors(tmp_path / "whole"), load_vectors(tmp_path / "cut")
    assert whole.words == cut.words and torch.equal(whole.vectors, cut.vectors)
    assert log_rows(tmp_path / "cut") == log_rows(tmp_path / "whole") and len(log_rows(tmp_path / "cut")) == 3
    assert main(["embeddings", "train", "--resume", "--out", str(tmp_path / "cut"), "--dim", "50"]) == 1
    assert "but --dim 50 (the run has 12)" in capsys.readouterr().err


def test_the_commands_answer_from_the_trained_vectors(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(corpus, out, "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    vectors = load_vectors(out)
    assert summary["words"] == len(vectors) == 15 and summary["dim"] == 12 and summary["epochs"] == 3

    assert main(["embeddings", "similar", "--model", str(out), "good", "--top", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    expected = vectors.most_similar("good", topn=3)
    assert [a["word"] for a in answer] == [w for w, _ in expected]
    assert [a["cosine"] for a in answer] == pytest.approx([s for _, s in expected])

    assert main(["embeddings", "analogy", "--model", str(out), "bad", "good", "awful", "--top", "1"]) == 0
    word, score = capsys.readouterr().out.split("\t")
    assert word == vectors.analogy("bad", "good", "awful")

    pytest.importorskip("gensim")
    assert main(["embeddings", "evaluate", "--model", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["analogies"]["questions"] == 0 and scores["analogies"]["oov_share"] == 1.0
    assert scores["analogies"]["accuracy"] is None  # undefined, not 0
    assert scores["wordsim353"]["spearman"] is None and scores["wordsim353"]["oov_share"] > 0.9
    assert main(["embeddings", "evaluate", "--model", str(out)]) == 0
    assert "Spearman n/a (too few pairs with vectors)" in capsys.readouterr().out


@pytest.mark.parametrize("format_name, binary", [("word2vec", False), ("word2vec-binary", True)])
def test_export_writes_a_file_gensim_loads_with_the_same_vectors(corpus, tmp_path, format_name, binary):
    models = pytest.importorskip("gensim.models")
    out = tmp_path / "run"
    assert main(train_argv(corpus, out)) == 0
    assert main(["embeddings", "export", "--model", str(out), "--format", format_name, str(tmp_path / "v")]) == 0
    keyed = models.KeyedVectors.load_word2vec_format(str(tmp_path / "v"), binary=binary)
    vectors = load_vectors(out)
    assert list(keyed.index_to_key) == vectors.words
    np.testing.assert_allclose(keyed.vectors, vectors.vectors.numpy(), rtol=1e-6, atol=1e-7)


def test_plot_draws_the_words_and_their_neighbours(corpus, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert main(train_argv(corpus, out)) == 0
    assert main(["embeddings", "plot", "--model", str(out), "good", "bad", "--neighbours", "2", "--out",
                 str(tmp_path / "words.png")]) == 0
    assert (tmp_path / "words.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from seqlab.embeddings.plot import projected

    drawn, owner, points = projected(load_vectors(out), ["good", "bad"], neighbours=2)
    assert drawn[:2] == ["good", "bad"] and len(drawn) >= 4 and owner[:2] == [0, 1] and points.shape == (len(drawn), 2)


def test_sentiment_starts_from_the_vectors_and_can_keep_them_fixed(corpus, tmp_path, capsys):
    vectors_out = tmp_path / "vectors"
    assert main(train_argv(corpus, vectors_out)) == 0
    sentiment = ["sentiment", "train", "--dataset", f"csv:{corpus}/reviews.csv", "--units", "8", "--dense-units", "0",
                 "--epochs", "1", "--verbose", "0", "--threads", "1", "--embeddings", str(vectors_out)]
    assert main([*sentiment, "--freeze-embeddings", "--out", str(tmp_path / "frozen")]) == 0
    model = load_model(tmp_path / "frozen" / "model")
    vocabulary, vectors = model.tokenizer.vocabulary, load_vectors(vectors_out)
    table = model.layers[0].embeddings.detach()
    assert table.shape[1] == 12  # the vectors' width, without --embedding-dim
    for word in ("good", "awful", "film"):
        assert torch.equal(table[vocabulary.index(word)], vectors[word])
    assert not model.layers[0].trainable
    assert main([*sentiment, "--embedding-dim", "5", "--out", str(tmp_path / "mismatch")]) == 1
    assert "holds vectors of 12 dimensions but --embedding-dim is 5" in capsys.readouterr().err
    assert not (tmp_path / "mismatch").exists()


def test_korean_word_forms_with_an_unseen_particle_get_vectors_near_their_stem(tmp_path):
    """Stems that keep different company, each seen with some particles; a form never seen in training gets its
    n-grams' vector, nearer its own stem's forms than the other stem's."""
    rng = random.Random(1)
    company = {"학교": ["선생님", "학생", "수업", "숙제"], "회사": ["사장님", "직원", "회의", "월급"]}
    particles = ["에", "에서", "는", "를", "가"]
    sentences = []
    for _ in range(3000):
        stem = rng.choice(list(company))
        sentences.append([stem + rng.choice(particles), *rng.choices(company[stem], k=4)])
    settings = Word2VecSettings(dim=24, epochs=5, min_count=1, sample=0, subwords=True, min_n=1, max_n=3,
                                buckets=20_000, threads=1, seed=3)
    vectors = Word2Vec(settings).fit(sentences)
    unseen = "학교에서는"
    assert unseen not in vectors and vectors.has_vector(unseen)
    same = np.mean([vectors.similarity(unseen, "학교" + p) for p in particles])
    other = np.mean([vectors.similarity(unseen, "회사" + p) for p in particles])
    assert same > other + 0.2, (same, other)


def test_a_resume_refuses_a_corpus_that_changed_since_the_run_started(corpus, tmp_path, capsys, monkeypatch):
    text = tmp_path / "reviews.txt"
    text.write_text((corpus / "reviews.txt").read_text())
    argv = ["embeddings", "train", "--corpus", f"text:{text}", "--min-count", "1", "--dim", "8", "--epochs", "2",
            "--threads", "1", "--verbose", "0", "--out", str(tmp_path / "run")]
    interrupt_the_second_epoch(monkeypatch)
    assert main(argv) == 130
    with open(text, "a") as file:
        file.write("one more good film\n")
    capsys.readouterr()
    assert main(["embeddings", "train", "--resume", "--out", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err
    assert "The corpus text:" in error and "has changed since it started (its SHA-256 differs)" in error
