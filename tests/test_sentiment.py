"""The sentiment application on small synthetic reviews: train → save → load → predict, CSV input,
defined answers for empty and unknown texts, clear errors for bad labels, the presets' exact models."""

from __future__ import annotations

import argparse
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab.apps import sentiment
from seqlab.commandline import read_lines
from seqlab.data import Vocabulary, WordTokenizer
from seqlab.layers import (LSTM, Bidirectional, Dense, Dropout, Embedding, GlobalAveragePooling1D, PositionEmbedding,
                           PositionalEncoding, SimpleRNN, TransformerBlock)

POSITIVE = ["good", "great", "wonderful", "loved", "superb"]
NEGATIVE = ["bad", "awful", "boring", "hated", "dull"]
FILLER = "the a film movie plot actor was and it is this".split()
TINY = dict(embedding_dim=8, units=8, dense_units=0, epochs=6, lr=0.02, mask=True, bucket=True, seed=0)


def write_reviews(path: Path, rows: int = 240, text_column: str = "review", label_column: str = "sentiment",
                  labels: tuple[str, ...] = ("neg", "pos")) -> Path:
    """A CSV of filler words plus two sentiment words; the label cycles through `labels`."""
    rng = random.Random(0)
    lines = [f"{text_column},{label_column}"]
    for i in range(rows):
        label = labels[i % len(labels)]
        words = rng.choices(FILLER, k=rng.randint(2, 8)) + rng.choices(POSITIVE if label == labels[-1] else NEGATIVE, k=2)
        rng.shuffle(words)
        lines.append(f'"{" ".join(words)}",{label}')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small model trained through the Python API on a CSV with custom column names, saved."""
    directory = tmp_path_factory.mktemp("sentiment")
    csv = write_reviews(directory / "reviews.csv")
    torch.set_num_threads(1)
    source = sentiment.DataSource(f"csv:{csv}", text_column="review", label_column="sentiment")
    result = sentiment.train(source, out=directory / "run", verbose=0, log=None, **TINY)
    return result, directory


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="seqlab")
    sentiment.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    status = args.handler(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ------------------------------------------------------------------ round trip
def test_train_save_load_predict_round_trip(trained):
    result, directory = trained
    assert result.test.count == 24 and result.test.accuracy == 1.0  # 240 rows: 192 / 24 / 24
    assert result.epoch_seconds and len(result.history["val_accuracy"]) == 6
    loaded = sentiment.load(directory / "run")  # OUT, or OUT/model
    texts = ["a great film", "boring plot and awful actor", "loved it", "the movie was dull"]
    before = result.classifier.predict(texts)
    after = loaded.predict(texts)
    assert [p.label for p in after] == ["pos", "neg", "pos", "neg"]
    np.testing.assert_allclose([p.positive for p in after], [p.positive for p in before], rtol=0, atol=1e-6)
    for p in after:
        assert p.probability == pytest.approx(p.positive if p.label == "pos" else 1 - p.positive)
        assert p.probability > 0.5


def test_saved_config_carries_encoder(trained):
    _, directory = trained
    config = json.loads((directory / "run" / "model" / "config.json").read_text())
    encoder = config["tokenizer"]
    assert encoder["class_name"] == "SentimentTextEncoder"
    assert encoder["config"]["label_names"] == ["neg", "pos"]
    assert encoder["config"]["vocabulary"]["tokenizer"] == WordTokenizer(lowercase=True).to_config()
    assert encoder["config"]["keep"] == "last" and encoder["config"]["max_len"] is None
    summary = json.loads((directory / "run" / "summary.json").read_text())
    assert summary["test"]["accuracy"] == 1.0 and summary["epochs_run"] == 6


def test_empty_and_unknown_texts_get_defined_answers(trained):
    result, _ = trained
    empty, unknown, punctuation = result.classifier.predict(["", "zzz qqq xyzzy", "!!! ..."])
    for prediction in (empty, unknown, punctuation):
        assert prediction.label in ("neg", "pos") and 0.5 <= prediction.probability <= 1.0
        assert prediction.note is not None
    assert (empty.tokens, empty.unknown) == (0, 0) and (unknown.tokens, unknown.unknown) == (3, 3)
    assert empty.positive == punctuation.positive  # both read as one unknown token
    assert result.classifier.predict([]) == []


# ------------------------------------------------------------------------- CLI
def test_cli_train_evaluate_predict_with_custom_columns(tmp_path, capsys, monkeypatch):
    csv = write_reviews(tmp_path / "data.csv", text_column="body", label_column="stars", labels=("0", "1"))
    out = tmp_path / "cli-model"
    status, report, err = run_cli(["sentiment", "train", "--dataset", f"csv:{csv}", "--text-column", "body",
                              "--label-column", "stars", "--embedding-dim", "8", "--units", "8",
                              "--dense-units", "0", "--epochs", "6", "--lr", "0.02", "--mask", "--bucket",
                              "--verbose", "0", "--out", str(out)], capsys)
    assert status == 0, err
    assert "Test accuracy 100.00% on 24 texts" in report and "6 epoch(s)" in report  # results: stdout
    assert "Saved " in err and "Test accuracy" not in err  # progress and hints: stderr

    status, out_text, _ = run_cli(["sentiment", "evaluate", "--model", str(out), "--json"], capsys)
    scores = json.loads(out_text)
    assert status == 0 and scores["count"] == 24 and scores["accuracy"] == 1.0
    assert scores["confusion"][0][1] == scores["confusion"][1][0] == 0 and scores["f1"] == 1.0

    status, out_text, _ = run_cli(["sentiment", "evaluate", "--model", str(out), "--dataset", f"csv:{csv}",
                                   "--text-column", "body", "--label-column", "stars"], capsys)
    assert status == 0 and "(240 texts)" in out_text and "positive = 'positive'" in out_text
    matrix = [[int(n) for n in line.split()[1:]] for line in out_text.splitlines()[-2:]]
    assert sum(map(sum, matrix)) == 240 and matrix[0][0] + matrix[1][1] >= 228  # every row, 95% right

    status, out_text, _ = run_cli(["sentiment", "predict", "--model", str(out), "--json", "superb film", ""], capsys)
    great, empty = (json.loads(line) for line in out_text.splitlines())
    assert status == 0 and great["label"] == "positive" and great["probability"] > 0.5
    assert empty["tokens"] == 0 and empty["note"] and empty["label"] in ("negative", "positive")

    monkeypatch.setattr("sys.stdin", io.StringIO("awful and boring\ngreat and wonderful\n"))
    status, out_text, _ = run_cli(["sentiment", "predict", "--model", str(out)], capsys)
    lines = [line.split("\t") for line in out_text.splitlines()]
    assert status == 0 and [line[0] for line in lines] == ["negative", "positive"]
    assert lines[1][2] == "great and wonderful" and 0.5 < float(lines[1][1]) <= 1.0


def test_third_label_value_is_a_clear_error(tmp_path, capsys):
    csv = write_reviews(tmp_path / "three.csv", labels=("neg", "neutral", "pos"))
    source = sentiment.DataSource(f"csv:{csv}", text_column="review", label_column="sentiment")
    with pytest.raises(sentiment.SentimentDataError, match=r"3 values \['neg', 'neutral', 'pos'\].*--labels NEG,POS"):
        source.splits()
    status, _, err = run_cli(["sentiment", "train", "--dataset", f"csv:{csv}", "--text-column", "review",
                              "--label-column", "sentiment", "--labels", "neg,pos", "--out", str(tmp_path / "m")],
                             capsys)
    assert status == 1 and "label other than ['neg', 'pos']" in err and "found ['neutral']" in err
    assert "at line 3, 6, 9" in err


def test_unclear_label_words_need_labels_option(tmp_path):
    csv = write_reviews(tmp_path / "words.csv", labels=("thumbs-down", "thumbs-up"))
    source = sentiment.DataSource(f"csv:{csv}", text_column="review", label_column="sentiment")
    with pytest.raises(sentiment.SentimentDataError, match="which one is positive is not clear"):
        source.splits()
    reversed_source = sentiment.DataSource(f"csv:{csv}", text_column="review", label_column="sentiment",
                                           labels=("thumbs-up", "thumbs-down"))
    train, _, _ = reversed_source.splits()
    assert train.label_names == {0: "thumbs-up", 1: "thumbs-down"} and set(train.labels) == {0, 1}


def test_missing_column_names_the_columns(tmp_path, capsys):
    csv = write_reviews(tmp_path / "data.csv")
    status, _, err = run_cli(["sentiment", "train", "--dataset", f"csv:{csv}", "--out", str(tmp_path / "m")], capsys)
    assert status == 1 and "no column 'text'" in err and "['review', 'sentiment']" in err


# ----------------------------------------------------------------- the recipes
def test_book_presets_are_the_tutorial_models():
    bilstm = sentiment.build_model(sentiment.make_recipe("book-bilstm"), vocabulary_size=1000)
    kinds = [type(layer) for layer in bilstm.layers]
    assert kinds == [Embedding, Bidirectional, Dense, Dense]
    assert isinstance(bilstm.layers[1].forward_layer, LSTM) and bilstm.layers[1].forward_layer.units == 64
    assert [layer.count_params() for layer in bilstm.layers] == [20_000, 43_520, 8_256, 65]
    assert not bilstm.layers[0].mask_zero
    rnn = sentiment.make_recipe("book-bisimplernn-100")
    model = sentiment.build_model(rnn, vocabulary_size=1000)
    assert isinstance(model.layers[1].forward_layer, SimpleRNN)
    assert model.layers[1].count_params() == 10_880  # Keras: Bidirectional(SimpleRNN(64)) on 20 features
    assert (rnn.max_len, rnn.epochs, rnn.batch_size, rnn.lr, rnn.mask) == (100, 10, 32, 1e-3, False)
    for recipe in (rnn, sentiment.make_recipe("book-bilstm")):  # tfds' Tokenizer keeps case; one fixed order
        assert (recipe.tokenizer, recipe.shuffle, recipe.bucket) == ("tfds", False, False)


def test_vocabulary_counts_only_the_tokens_the_model_reads():
    train = sentiment.TextLabelSplit(["Opening words then GOOD film", "dull start but bad film"], [1, 0],
                                     {0: "neg", 1: "pos"})
    encoder = sentiment.TextEncoder.build(train, sentiment.make_recipe("book-bisimplernn-100", max_len=2))
    assert set(encoder.vocabulary.tokens[1:-1]) == {"GOOD", "film", "bad"}  # cased, last 2 tokens of each
    assert encoder.encode("Opening film") == [encoder.vocabulary.unknown_index, encoder.vocabulary.index("film")]


def test_recipe_options_override_preset_and_korean_best_reads_syllables():
    assert sentiment.make_recipe("book-bilstm", epochs=2, cell="gru").epochs == 2
    assert sentiment.make_recipe("best", dataset="nsmc").tokenizer == "char"
    assert sentiment.make_recipe("best", dataset="imdb").tokenizer == "word"
    with pytest.raises(ValueError, match="cell must be one of"):
        sentiment.make_recipe(cell="transformer")
    with pytest.raises(ValueError, match="unknown preset"):
        sentiment.make_recipe("book-gru")


def test_encoder_keeps_last_tokens_and_never_returns_nothing():
    vocabulary = Vocabulary.build(["good film", "bad film film"], tokenizer=WordTokenizer(lowercase=True))
    encoder = sentiment.TextEncoder(vocabulary, max_len=2)
    film, good, bad = (vocabulary.index(w) for w in ("film", "good", "bad"))
    assert encoder.encode("Bad GOOD film") == [good, film]
    assert encoder.encode("") == encoder.encode("...") == [vocabulary.unknown_index]
    same = sentiment.TextEncoder.from_config(json.loads(json.dumps(encoder.get_config())))
    assert same.encode("bad film") == [bad, film] and same.max_len == 2


def test_ngrams_and_a_model_without_recurrent_layer(tmp_path):
    recipe = sentiment.make_recipe(layers=0, pooling="average", ngrams=2, mask=True, embedding_dim=4, dense_units=0)
    model = sentiment.build_model(recipe, vocabulary_size=50)
    assert [type(layer).__name__ for layer in model.layers] == ["Embedding", "GlobalAveragePooling1D", "Dense"]
    assert model.count_params() == 50 * 4 + 5
    vocabulary = Vocabulary.build([sentiment.with_ngrams(["not", "bad", "at", "all"], 2)],
                                  tokenizer=WordTokenizer(lowercase=True))
    encoder = sentiment.TextEncoder(vocabulary, max_len=2, ngrams=2)
    assert encoder.tokens("Not bad at all") == ["at", "all", "at all"]
    assert vocabulary.decode(encoder.encode("not bad")) == ["not", "bad", "not bad"]
    with pytest.raises(ValueError, match="layers must be 1 or more, or 0"):
        sentiment.make_recipe(layers=0, pooling="last")


def test_unmasked_inference_keeps_order_and_training_padding():
    batches = sentiment.review_batches([[1, 2, 3], [4], [5, 6]], [1, 0, 1], batch_size=2, shuffle=False)
    (ids, labels), (last, _) = list(batches)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and labels.tolist() == [[1.0], [0.0]]
    assert last.tolist() == [[5, 6]]
    by_length = sentiment.review_batches([[1, 2, 3], [4], [5, 6]], None, batch_size=2, shuffle=False,
                                        sorted_by_length=True)
    assert [b.tolist() for b in by_length] == [[[4, 0], [5, 6]], [[1, 2, 3]]]


def test_an_unmasked_models_answer_for_a_text_does_not_depend_on_the_other_texts(tmp_path):
    csv = write_reviews(tmp_path / "reviews.csv")
    source = sentiment.DataSource(f"csv:{csv}", text_column="review", label_column="sentiment")
    result = sentiment.train(source, verbose=0, log=None, **{**TINY, "mask": False, "epochs": 2})
    classifier = result.classifier
    short, long = "good film", " ".join(["the plot was dull and it is a movie"] * 30)
    alone = classifier.predict([short])[0].probability
    beside = [p.probability for p in classifier.predict([long, short, "awful", short + " great"])]
    assert beside[1] == alone  # bit for bit: nothing is padded
    others = [classifier.predict([text])[0].probability for text in (long, "awful", short + " great")]
    assert [beside[0], beside[2], beside[3]] == others
    # The old protocol (padded to the longest in the batch) changed the short text's answer.
    ids = classifier.encoder.encode_batch([long, short])
    padded = sentiment.review_batches(ids, None, batch_size=2, shuffle=False)
    assert float(classifier.model.predict_on_batch(next(iter(padded)))[1, 0]) != pytest.approx(alone, abs=1e-6)


# ---------------------------------------------------------------- transformer
def test_transformer_preset_builds_the_keras_example_shape():
    recipe = sentiment.make_recipe("transformer")
    model = sentiment.build_model(recipe, vocabulary_size=1000)
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [Embedding, PositionEmbedding, TransformerBlock, GlobalAveragePooling1D, Dropout, Dense,
                     Dropout, Dense]
    # 1000×32 + 200×32 positions + block (attention 4 × (32×32 + 32) = 4,224, MLP 2 × 1,056, norms 128) + 660 + 21
    assert [layer.count_params() for layer in model.layers] == [32_000, 6_400, 6_464, 0, 0, 660, 0, 21]
    assert model.layers[0].mask_zero and model.layers[2].num_heads == 2 and not model.layers[2].causal
    sinusoidal = sentiment.build_model(sentiment.make_recipe(arch="transformer", embedding_dim=8), vocabulary_size=10)
    assert isinstance(sinusoidal.layers[1], PositionalEncoding)
    assert sentiment.make_recipe(arch="transformer").pooling == "average"
    assert sentiment.make_recipe().pooling == "last"


def test_transformer_recipe_errors_say_what_to_change():
    with pytest.raises(ValueError, match="pooling 'average' or 'max'"):
        sentiment.make_recipe(arch="transformer", pooling="last")
    with pytest.raises(ValueError, match="layers >= 1"):
        sentiment.make_recipe(arch="transformer", layers=0)
    with pytest.raises(ValueError, match="divisible by heads=3"):
        sentiment.make_recipe(arch="transformer", embedding_dim=8, heads=3)
    with pytest.raises(ValueError, match="arch must be one of"):
        sentiment.make_recipe(arch="cnn")


def test_transformer_trains_saves_loads_and_ignores_padding(tmp_path, capsys):
    csv = write_reviews(tmp_path / "reviews.csv")
    out = tmp_path / "transformer"
    status, _, err = run_cli(["sentiment", "train", "--dataset", f"csv:{csv}", "--text-column", "review",
                              "--label-column", "sentiment", "--arch", "transformer", "--embedding-dim", "8",
                              "--heads", "2", "--units", "16", "--dense-units", "0", "--max-len", "20",
                              "--epochs", "8", "--lr", "0.01", "--mask", "--bucket", "--verbose", "0",
                              "--out", str(out)], capsys)
    assert status == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"]["arch"] == "transformer" and summary["test"]["accuracy"] >= 0.9
    classifier = sentiment.load(out)
    assert any(isinstance(layer, TransformerBlock) for layer in classifier.model.layers)
    texts = ["superb", "the plot was boring and the actor was dull and it is this film", "loved it"]
    together = [p.positive for p in classifier.predict(texts)]
    alone = [classifier.predict([text])[0].positive for text in texts]
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)  # padding never changes an answer
    assert [p.label for p in classifier.predict(["great and wonderful", "awful and bad"])] == ["pos", "neg"]


def test_a_file_of_texts_splits_at_newlines_only(tmp_path):
    """U+0085, U+2028, \\x0b, \\x0c and \\x1c-\\x1e are inside a review, not line breaks (str.splitlines breaks there)."""
    inside = ["a\u0085b", "c\u2028d", "e\x0bf", "g\x0ch", "i\x1cj\x1dk\x1el", "m\rn"]
    path = tmp_path / "reviews.txt"
    path.write_bytes(("\ufeff" + "\r\n".join(inside[:3]) + "\n" + "\n".join(inside[3:]) + "\n").encode("utf-8"))
    assert read_lines(str(path)) == inside
    path.write_bytes(b"no final newline\n\nlast")
    assert read_lines(str(path)) == ["no final newline", "", "last"]


def test_a_python_resume_needs_only_the_run_and_what_it_extends(tmp_path):
    csv = write_reviews(tmp_path / "reviews.csv")
    source = sentiment.DataSource(f"csv:{csv}", text_column="review", label_column="sentiment")
    options = {**TINY, "epochs": 2}
    sentiment.train(source, out=tmp_path / "run", verbose=0, log=None, **options)
    resumed = sentiment.train(out=tmp_path / "run", resume=True, epochs=3, verbose=0, log=None)
    assert len(resumed.epoch_seconds) == 3
    with pytest.raises(ValueError, match=r"but --units 99 \(the run has 8\)"):
        sentiment.train(out=tmp_path / "run", resume=True, units=99, verbose=0, log=None)
    assert sentiment.preset_values("best", "nsmc")["tokenizer"] == "char"  # what a resume of NSMC's best checks
