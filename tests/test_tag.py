"""The tagging app: masked accuracy by hand, the CRF loss in fit, constrained decoding, a tiny tagger that
learns, saving and loading, resuming, and the commands' output."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from seqlab.apps.tag import Tagger, load_tagger, run_settings, train
from seqlab.apps.tag.cli import entity_spans
from seqlab.apps.tag.encoding import TagEncoder
from seqlab.apps.tag.evaluation import score_tags
from seqlab.cli import main
from seqlab.data.datasets.tagged import TaggedSentences
from seqlab.seeding import set_seed
from seqlab.training import Adam, SparseCategoricalCrossentropy

NOUNS, VERBS, DETS = ["cat", "dog", "fox", "owl"], ["runs", "sees", "eats", "hides"], ["the", "a"]


def pos_sentences(count: int, seed: int) -> TaggedSentences:
    """'the cat sees a dog' -> DET NOUN VERB DET NOUN; 1 to 2 clauses, so lengths vary (padding)."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(count):
        words, labels = [], []
        for _ in range(rng.randint(1, 2)):
            words += [rng.choice(DETS), rng.choice(NOUNS), rng.choice(VERBS)]
            labels += ["DET", "NOUN", "VERB"]
        sentences.append(words)
        tags.append(labels)
    return TaggedSentences("toy", sentences, tags)


def ner_sentences(count: int, seed: int) -> TaggedSentences:
    """Characters; a name (B-PS I-PS...) or a place (B-LC ...) then '에 갔다'."""
    rng = random.Random(seed)
    entities = [("김철수", "PS"), ("이영", "PS"), ("서울", "LC"), ("부산시", "LC")]
    sentences, tags = [], []
    for _ in range(count):
        name, kind = rng.choice(entities)
        sentences.append(list(name + "에 갔다"))
        tags.append([f"B-{kind}", *[f"I-{kind}"] * (len(name) - 1), "O", "O", "O", "O"])
    return TaggedSentences("toy-ner", sentences, tags)


def write_tsv(path: Path, data: TaggedSentences) -> Path:
    path.write_text("\n".join("".join(f"{t}\t{g}\n" for t, g in zip(s, tags))
                              for s, tags in zip(data.sentences, data.tags)))
    return path


def small_tagger(data: TaggedSentences, **options) -> Tagger:
    set_seed(0)
    settings = dict(word_dim=8, char_features="cnn", char_dim=6, char_units=6, units=8, layers=1, dropout=0.0,
                    word_dropout=0.0)
    model = Tagger(TagEncoder.build(data), **{**settings, **options})
    model.compile(Adam(learning_rate=0.01), SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                  metrics=["accuracy"], device="cpu")
    return model


def hand_accuracy(model: Tagger, words, chars, tags) -> float:
    predicted = model((words, chars)).argmax(-1)
    real = tags != 0
    return float((predicted[real] == tags[real]).float().mean())


@pytest.mark.parametrize("char_features", ["cnn", "lstm", "none"])
def test_masked_token_accuracy_is_the_hand_computation_in_training_and_evaluation(char_features):
    data = pos_sentences(12, seed=1)
    model = small_tagger(data, char_features=char_features)
    (words, chars), tags = model.encoder.collate(model.encoder.encode(data.sentences, data.tags))
    assert (tags == 0).sum() > 10  # the batch is padded
    model.train()
    with torch.no_grad():
        expected_train = hand_accuracy(model, words, chars, tags)  # the weights the step starts from
    logs = model.train_on_batch((words, chars), tags, return_dict=True)
    assert logs["accuracy"] == pytest.approx(expected_train, abs=1e-6)
    model.eval()
    with torch.no_grad():
        expected = hand_accuracy(model, words, chars, tags)
    logs = model.evaluate((words, chars), tags, batch_size=5, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert 0.0 < expected < 1.0


def test_the_crf_loss_in_fit_is_its_negative_log_likelihood_per_token():
    data = ner_sentences(10, seed=2)
    model = small_tagger(data, crf=True)
    (words, chars), tags = model.encoder.collate(model.encoder.encode(data.sentences, data.tags))
    model.eval()
    with torch.no_grad():
        emissions = model((words, chars))
        expected = model.crf.negative_log_likelihood(emissions, tags, tags != 0).sum() / (tags != 0).sum()
    logs = model.evaluate((words, chars), tags, batch_size=64, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(float(expected), rel=1e-5)
    softmax = small_tagger(data)
    assert softmax.evaluate((words, chars), tags, verbose=0, return_dict=True)["loss"] != pytest.approx(logs["loss"])


def test_softmax_decoding_never_emits_an_i_without_its_b():
    data = ner_sentences(10, seed=3)
    model = small_tagger(data)
    names = model.encoder.tag_names
    emissions = torch.full((1, 3, len(names)), -5.0)
    emissions[0, 0, names.index("I-PS")] = 5.0      # the arg-max would start with I-PS
    emissions[0, 0, names.index("B-LC")] = 4.0
    emissions[0, 1, names.index("I-PS")] = 5.0
    emissions[0, 2, names.index("O")] = 5.0
    path = model.decode(emissions, torch.ones(1, 3, dtype=torch.bool))[0].tolist()
    tags = [names[i] for i in path]
    assert tags[0] != "I-PS" and all(not t.startswith("I-") or tags[i - 1][2:] == t[2:] and i > 0
                                     for i, t in enumerate(tags))
    assert tags == ["B-LC", "I-LC", "O"] or tags == ["B-PS", "I-PS", "O"]
    assert "<pad>" not in tags and "<unk>" not in tags


@pytest.mark.parametrize("crf", [False, True])
def test_a_tiny_tagger_learns_saves_loads_and_predicts_the_same(tmp_path, crf):
    data = ner_sentences(80, seed=4)
    tsv = write_tsv(tmp_path / "ner.tsv", data)
    settings = run_settings(dataset=f"tsv:{tsv}", word_dim=16, char_dim=8, char_units=8, units=16, layers=1,
                            epochs=15, lr=0.02, lr_decay=1.0, crf=crf, dropout=0.0, word_dropout=0.0,
                            patience=100)
    run = train(tmp_path / "run", settings, verbose=0, log=None)
    assert run.test.entities["f1"] == 1.0 and run.test.accuracy == 1.0
    loaded = load_tagger(tmp_path / "run")
    sentences = [list("이영에 갔다"), list("서울에 갔다")]
    assert loaded.tag(sentences) == run.model.tag(sentences)
    assert loaded.tag(sentences)[0][:2] == ["B-PS", "I-PS"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test"]["entities"]["f1"] == 1.0 and summary["epochs_run"] == 15


def test_resuming_a_run_ends_where_an_uninterrupted_one_ends(tmp_path):
    tsv = write_tsv(tmp_path / "pos.tsv", pos_sentences(40, seed=5))
    options = dict(dataset=f"tsv:{tsv}", word_dim=8, char_dim=6, char_units=6, units=8, layers=1, lr=0.01,
                   patience=100)
    whole = train(tmp_path / "whole", run_settings(**options, epochs=3), verbose=0, log=None)
    train(tmp_path / "parts", run_settings(**options, epochs=2), verbose=0, log=None)
    resumed = train(tmp_path / "parts", None, resume=True, given={"epochs": 3}, verbose=0, log=None)
    assert len(resumed.history["loss"]) == 3
    assert resumed.history == whole.history  # losses, accuracies and the plateau's learning rates
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_entity_spans_and_scores_by_hand():
    tokens = list("김철수가 서울")
    tags = ["B-PS", "I-PS", "I-PS", "O", "O", "B-LC", "I-LC"]
    assert entity_spans(tokens, tags, "characters") == [
        {"text": "김철수", "type": "PS", "start": 0, "end": 3}, {"text": "서울", "type": "LC", "start": 5, "end": 7}]
    assert entity_spans(["New", "York", "is"], ["B-LC", "I-LC", "O"])[0]["text"] == "New York"
    gold = [["B-PS", "I-PS", "O", "B-LC"], ["B-LC", "I-LC", "O"]]
    predicted = [["B-PS", "I-PS", "O", "O"], ["B-LC", "O", "O"]]   # one PS right; LC: one missed, one cut short
    scores = score_tags(gold, predicted)
    assert scores.accuracy == pytest.approx(5 / 7)
    assert scores.entities["precision"] == pytest.approx(1 / 2) and scores.entities["recall"] == pytest.approx(1 / 3)
    assert scores.entities["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert scores.entities["per_type"]["PS"]["f1"] == 1.0 and scores.entities["per_type"]["LC"]["f1"] == 0.0
    assert scores.entities["macro_f1"] == pytest.approx(0.5)
    # per-character F1 of B-PS 1, I-PS 1, B-LC 2/3 (P 1, R 1/2), I-LC 0: macro 2/3 + ... / 4
    assert scores.entities["char_macro_f1"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    assert scores.confusion["B-LC"] == {"B-LC": 1, "O": 1} and scores.top_confusions(1) == [("B-LC", "O", 1)]
    assert score_tags([["NOUN", "VERB"]], [["NOUN", "NOUN"]]).entities is None
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
        score_tags([["A", "B"]], [["A"]])


def test_the_commands_train_evaluate_and_predict(tmp_path, capsys):
    tsv = write_tsv(tmp_path / "ner.tsv", ner_sentences(60, seed=6))
    out = tmp_path / "run"
    assert main(["tag", "train", "--dataset", f"tsv:{tsv}", "--word-dim", "16", "--char-dim", "8", "--char-units",
                 "8", "--units", "16", "--layers", "1", "--epochs", "12", "--learning-rate", "0.02", "--dropout",
                 "0", "--word-dropout", "0", "--crf", "--verbose", "0", "--threads", "1", "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["epochs"] == 12 and result["test"]["entities"]["f1"] == 1.0
    assert main(["tag", "evaluate", "--model", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["accuracy"] == 1.0 and scores["sentences"] == 6
    assert main(["tag", "predict", "--model", str(out), "--json", "김철수에 갔다"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["tokens"] == list("김철수에 갔다")
    assert line["entities"] == [{"text": "김철수", "type": "PS", "start": 0, "end": 3}]
    assert main(["tag", "predict", "--model", str(out), "부산시에 갔다"]) == 0
    assert capsys.readouterr().out == "부산시에 갔다\t부산시 [LC]\n"
    with open(tsv, "a") as file:  # the data changed: its seeded test part is no longer the held-out one
        file.write("\n김\tB-PS\n")
    assert main(["tag", "evaluate", "--model", str(out)]) == 1
    assert "has changed since the model was trained on it" in capsys.readouterr().err


def test_predict_prints_word_tag_pairs(tmp_path, capsys):
    tsv = write_tsv(tmp_path / "pos.tsv", pos_sentences(60, seed=7))
    out = tmp_path / "pos"
    assert main(["tag", "train", "--dataset", f"tsv:{tsv}", "--word-dim", "8", "--char-dim", "6", "--char-units",
                 "6", "--units", "8", "--layers", "1", "--epochs", "10", "--learning-rate", "0.03", "--lr-decay", "1",
                 "--verbose", "0",
                 "--threads", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["tag", "predict", "--model", str(out), "the owl hides a fox"]) == 0
    assert capsys.readouterr().out == "the/DET owl/NOUN hides/VERB a/DET fox/NOUN\n"


def test_embeddings_start_the_word_embedding_and_can_stay_frozen(tmp_path):
    from seqlab.embeddings import WordVectors, save_vectors
    data = pos_sentences(40, seed=8)
    tsv = write_tsv(tmp_path / "pos.tsv", data)
    words = [*NOUNS, *VERBS, *DETS]
    vectors = WordVectors(words, torch.randn(len(words), 6, generator=torch.Generator().manual_seed(0)))
    save_vectors(vectors, tmp_path / "vectors")
    options = dict(dataset=f"tsv:{tsv}", char_dim=6, char_units=6, units=8, layers=1, epochs=2, patience=100,
                   embeddings=str(tmp_path / "vectors"), freeze_embeddings=True)
    settings = run_settings(**options)
    assert settings["word_dim"] == 6   # the vectors' width
    run = train(tmp_path / "run", settings, verbose=0, log=None)
    table = run.model.word_embedding.get_weights()[0]
    for word in words:
        assert torch.allclose(torch.as_tensor(table[run.model.encoder.words.index(word)]), vectors.vector(word))
    assert not run.model.word_embedding.trainable
    with pytest.raises(ValueError, match="--embeddings holds vectors of 6 dimensions but --word-dim is 8"):
        run_settings(**options, word_dim=8)


def test_the_learning_rate_halves_after_two_epochs_without_a_better_dev_accuracy(tmp_path):
    tsv = write_tsv(tmp_path / "pos.tsv", pos_sentences(40, seed=9))
    options = dict(dataset=f"tsv:{tsv}", word_dim=8, char_dim=6, char_units=6, units=8, layers=1, epochs=5,
                   patience=100, lr=1e-9)  # too small a step to change a prediction: the dev accuracy stalls
    run = train(tmp_path / "run", run_settings(**options), verbose=0, log=None)
    assert run.history["learning_rate"] == pytest.approx([1e-9, 1e-9, 1e-9, 5e-10, 5e-10])
    constant = train(tmp_path / "constant", run_settings(**options, lr_decay=1.0), verbose=0, log=None)
    assert "learning_rate" not in constant.history


@pytest.mark.parametrize("char_features", ["cnn", "lstm"])
def test_a_sentence_gets_the_same_scores_alone_and_beside_longer_words(char_features):
    data = pos_sentences(12, seed=11)
    model = small_tagger(data, char_features=char_features)
    model.eval()
    alone = model.encoder.collate(model.encoder.encode([["the", "cat"]]))[0]
    beside = model.encoder.collate(model.encoder.encode([["the", "cat"], ["a", "hippopotamus", "runs"]]))[0]
    with torch.no_grad():
        assert torch.allclose(model(alone)[0], model(beside)[0, :2], atol=1e-6)


def test_patience_zero_turns_early_stopping_off_and_bad_settings_are_refused():
    from seqlab.apps.tag.settings import Settings
    assert Settings(patience=0).patience is None and Settings().patience == 5
    with pytest.raises(ValueError, match=r"lr_decay must be in \(0, 1\]"):
        Settings(lr_decay=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        Settings(dropout=1.0)
