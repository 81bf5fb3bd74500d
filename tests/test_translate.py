"""Translation: decoding (greedy, beam), attention masks, a tiny translator that learns, saving, CLI, errors."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab.apps import translate
from seqlab.apps.translate import (TranslationInputError, Translator, attention_figure, build_vocabularies,
                                   corpus_bleu, detokenize, encode_pairs, load_translation_data)
from seqlab.generation.decoding import beam_search, beam_search_batch, greedy_decode, length_penalty_factor
from seqlab.saving import load_model
from seqlab.seeding import set_seed
from seqlab.training import Adam, SparseCategoricalCrossentropy

DATA_DIR = Path(os.environ.get("SEQLAB_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
SYMBOLS = "a b c d e f g h".split()


def reversal_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """'c a f' -> 'f a c': 2 to 5 symbols."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        words = [rng.choice(SYMBOLS) for _ in range(rng.randint(2, 5))]
        pairs.append((" ".join(words), " ".join(reversed(words))))
    return pairs


def small_translator(attention="dot", bidirectional=True, cell="gru", seed=0) -> Translator:
    source, target = build_vocabularies(reversal_pairs(200, seed=1))
    set_seed(seed)
    return Translator(source, target, embedding_dim=8, units=8, cell=cell, bidirectional=bidirectional,
                      attention=attention, max_output_length=8)


@pytest.fixture(scope="module")
def trained_reverser() -> Translator:
    """A translator trained to reverse 2–5 symbol sequences (a few seconds on one thread)."""
    pairs = reversal_pairs(2000, seed=0)
    source_vocabulary, target_vocabulary = build_vocabularies(pairs)
    x, target_in, target_out = encode_pairs(pairs, source_vocabulary, target_vocabulary)
    set_seed(0)
    model = Translator(source_vocabulary, target_vocabulary, embedding_dim=16, units=32, attention="dot",
                       max_output_length=8)
    model.compile(Adam(learning_rate=5e-3), SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                  device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.fit((x, target_in), target_out, batch_size=64, epochs=6, seed=0, verbose=0)
    torch.set_num_threads(threads)
    return model


# ---------------------------------------------------------------- learning
def test_tiny_translator_learns_to_reverse_sequences(trained_reverser):
    test = reversal_pairs(300, seed=99)
    outputs = trained_reverser.translate([source for source, _ in test])
    exact = np.mean([output.text == target for output, (_, target) in zip(outputs, test)])
    assert exact >= 0.95
    assert trained_reverser.translate(["a b c d"], beam_width=3)[0].tokens == ["d", "c", "b", "a"]


def test_attention_of_the_trained_reverser_looks_at_the_mirrored_token(trained_reverser):
    (translation,) = trained_reverser.translate(["a b c d e"])
    assert translation.tokens == ["e", "d", "c", "b", "a"]
    assert translation.attention.shape == (6, 5)      # 5 words + <eos> down, 5 source words across
    np.testing.assert_array_equal(translation.attention[:5].argmax(1), [4, 3, 2, 1, 0])


# ---------------------------------------------------------------- decoding
def test_beam_search_of_width_one_equals_greedy_decoding():
    model = small_translator().eval()
    sources = ["a b c", "h g", "c c c c d", "e", "f a b"]
    batch = model.encode_sources(sources)
    greedy = greedy_decode(model, model.start(batch), len(sources), model.sos, model.eos, max_length=8)
    for row, expected in zip(batch, greedy):
        (best, *_) = beam_search(model, model.start(row[None, : int((row != 0).sum())]), model.sos, model.eos,
                                 beam_width=1, max_length=8)
        assert best.tokens == expected.tokens and best.finished == expected.finished
        assert best.log_probability == pytest.approx(expected.log_probability, abs=1e-5)
        np.testing.assert_allclose(best.attention.numpy(), expected.attention[:, : row.ne(0).sum()].numpy(),
                                   atol=1e-6)


class PrefixDecoder:
    """A decoder given by a table: p(next | prefix). Tokens: 2 = <eos>, 3 = x, 4 = y (0 pad, 1 <sos>).

    Greedy takes x (0.5) then x (0.4): P(x x) = 0.2. Beam search finds y (0.4) then <eos> (0.9): 0.36.
    """

    table = {(): {3: 0.5, 4: 0.4, 2: 0.1}, (3,): {3: 0.4, 4: 0.3, 2: 0.3}, (4,): {2: 0.9, 3: 0.05, 4: 0.05},
             (3, 3): {2: 1.0}, (3, 4): {2: 1.0}}

    def decode_step(self, tokens, prefixes):
        prefixes = [p + ((int(t),) if int(t) != 1 else ()) for p, t in zip(prefixes, tokens)]
        log_probs = torch.full((len(prefixes), 5), -math.inf)
        for row, prefix in enumerate(prefixes):
            for token, p in self.table[prefix].items():
                log_probs[row, token] = math.log(p)
        return log_probs, prefixes, None

    def reorder_state(self, prefixes, indices):
        return [prefixes[i] for i in indices.tolist()]


def test_beam_search_finds_the_more_probable_sequence_that_greedy_misses():
    decoder = PrefixDecoder()
    greedy = greedy_decode(decoder, [()], 1, sos=1, eos=2, max_length=5)[0]
    assert greedy.tokens == [3, 3] and greedy.log_probability == pytest.approx(math.log(0.2))
    best = beam_search(decoder, [()], sos=1, eos=2, beam_width=2, max_length=5)[0]
    assert best.tokens == [4] and best.log_probability == pytest.approx(math.log(0.36))
    assert beam_search(decoder, [()], sos=1, eos=2, beam_width=1, max_length=5)[0].tokens == [3, 3]


@pytest.mark.parametrize("make", ["recurrent", "transformer"])
def test_batched_beam_search_finds_what_each_source_finds_alone(make):
    if make == "transformer":
        from test_translate_transformer import small_transformer
        model = small_transformer(seed=3)
    else:
        model = small_translator(seed=2).eval()
    sources = ["a b c d e", "h g", "c", "f a b e"]
    batch = model.encode_sources(sources)
    together = beam_search_batch(model, model.start(batch), len(sources), model.sos, model.eos, beam_width=3,
                                 max_length=7, length_penalty=0.6)
    for row, found in zip(batch, together):
        alone = beam_search(model, model.start(row[None, : int((row != 0).sum())]), model.sos, model.eos,
                            beam_width=3, max_length=7, length_penalty=0.6)
        assert [(h.tokens, h.finished) for h in found] == [(h.tokens, h.finished) for h in alone]
        np.testing.assert_allclose([h.score for h in found], [h.score for h in alone], atol=1e-5)
        np.testing.assert_allclose(found[0].attention[:, : row.ne(0).sum()].numpy(), alone[0].attention.numpy(),
                                   atol=1e-5)


def test_batched_beam_search_of_a_table_decoder():
    together = beam_search_batch(PrefixDecoder(), [(), (3,)], 2, sos=1, eos=2, beam_width=2, max_length=5)
    assert together[0][0].tokens == [4] and together[0][0].log_probability == pytest.approx(math.log(0.36))
    # after x: x (0.4) then <eos> (1.0) beats y (0.3) then <eos> and <eos> at once (0.3)
    assert together[1][0].tokens == [3] and together[1][0].log_probability == pytest.approx(math.log(0.4))


def test_length_penalty_lets_the_longer_hypothesis_win():
    # score = log P / ((5 + |Y|) / 6) ** alpha: y <eos> -1.02 / 2.16 = -0.47, x x <eos> -1.61 / 4.21 = -0.38
    best = beam_search(PrefixDecoder(), [()], sos=1, eos=2, beam_width=2, max_length=5, length_penalty=5.0)[0]
    assert best.tokens == [3, 3]
    assert best.score == pytest.approx(math.log(0.2) / length_penalty_factor(3, 5.0))
    assert length_penalty_factor(3, 0.0) == 1.0


def test_max_length_stops_decoding_and_marks_the_output_unfinished():
    model = small_translator()
    greedy = greedy_decode(model, model.start(model.encode_sources(["a b"])), 1, model.sos, -1, max_length=3)[0]
    assert len(greedy.tokens) == 3 and not greedy.finished and greedy.attention.shape == (3, 2)
    beam = beam_search(model, model.start(model.encode_sources(["a b"])), model.sos, -1, beam_width=2,
                       max_length=3)
    assert [len(h.tokens) for h in beam] == [3, 3] and not beam[0].finished
    with pytest.raises(ValueError, match="beam_width must be at least 1"):
        beam_search(model, model.start(model.encode_sources(["a"])), model.sos, model.eos, beam_width=0)


def test_step_by_step_decoding_with_carried_state_equals_the_teacher_forced_decoder():
    for cell, attention in (("gru", "dot"), ("lstm", "additive"), ("gru", None)):
        model = small_translator(attention=attention, cell=cell).eval()
        source = model.encode_sources(["a b c", "d e"])
        target_in = torch.tensor([[1, 5, 6, 7], [1, 8, 9, 0]])
        with torch.no_grad():
            logits, _, weights = model.decode(target_in, model.start(source))
            state, steps = model.start(source), []
            for t in range(target_in.shape[1]):
                log_probs, state, step_weights = model.decode_step(target_in[:, t], state)
                steps.append(log_probs)
        torch.testing.assert_close(torch.stack(steps, 1), torch.log_softmax(logits, -1), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- attention
@pytest.mark.parametrize("attention", ["dot", "additive"])
def test_decoder_attention_sums_to_one_over_real_source_tokens_and_is_zero_on_padding(attention):
    model = small_translator(attention=attention).eval()
    source = model.encode_sources(["a b c d e", "f g", "h"])        # padded to 5
    target_in = torch.tensor([[1, 5, 6], [1, 7, 0], [1, 8, 9]])
    with torch.no_grad():
        _, _, weights = model.decode(target_in, model.start(source))
    real = (source != 0)[:, None, :].expand_as(weights)
    assert weights.shape == (3, 3, 5)
    assert torch.all(weights[~real] == 0.0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 3), atol=1e-6, rtol=0)
    assert torch.all(weights[real] > 0)


def test_padding_a_source_changes_no_translation():
    model = small_translator(attention="additive").eval()
    with torch.no_grad():
        alone = model(( model.encode_sources(["f g"]), torch.tensor([[1, 5, 6]])))
        padded = model((model.encode_sources(["f g", "a b c d e"]), torch.tensor([[1, 5, 6], [1, 7, 8]])))
    torch.testing.assert_close(padded[:1], alone, atol=1e-5, rtol=1e-5)


def test_attention_heatmap_has_the_tokens_on_its_axes(tmp_path, trained_reverser):
    pytest.importorskip("matplotlib")
    (translation,) = trained_reverser.translate(["a b c"])
    figure = attention_figure(translation)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["c", "b", "a", "<eos>"]
    path = translate.save_attention_heatmap(translation, tmp_path / "map.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 200_000


def test_a_model_without_attention_has_no_heatmap():
    model = small_translator(attention=None)
    (translation,) = model.translate(["a b"])
    assert translation.attention is None
    with pytest.raises(ValueError, match="trained without attention"):
        attention_figure(translation)


# ---------------------------------------------------------------- errors
def test_text_of_unknown_words_says_so_and_names_the_vocabulary_size():
    model = small_translator()
    with pytest.raises(TranslationInputError, match=r"None of the words of 'zebra quokka'.*source vocabulary "
                                                     rf"\({len(model.source_vocabulary)} tokens"):
        model.translate(["zebra quokka"])
    assert model.translate(["a zebra"])[0].source_tokens == ["a", "<unk>"]  # one known word is enough


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_refused(text):
    with pytest.raises(TranslationInputError, match="Nothing to translate"):
        small_translator().translate([text])


def test_target_vocabulary_without_sos_and_eos_is_refused():
    source, _ = build_vocabularies(reversal_pairs(10, seed=1))
    with pytest.raises(ValueError, match=r"needs the specials <sos> and <eos>"):
        Translator(source, source)


# ---------------------------------------------------------------- saving
def test_saved_translator_restores_with_its_vocabularies(tmp_path, trained_reverser):
    trained_reverser.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())["model"]
    assert config["class_name"] == "Translator"
    assert config["config"]["target_vocabulary"]["specials"] == ["<sos>", "<eos>"]
    loaded = load_model(tmp_path / "model")
    assert loaded.target_vocabulary == trained_reverser.target_vocabulary
    texts = ["a b c", "h g f e"]
    assert [t.text for t in loaded.translate(texts, beam_width=2)] == [
        t.text for t in trained_reverser.translate(texts, beam_width=2)]


# ---------------------------------------------------------------- data and BLEU
def test_bleu_is_100_for_exact_output_and_accepts_several_references():
    pytest.importorskip("sacrebleu")
    bleu, signature = corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]])
    assert bleu == pytest.approx(100.0) and "nrefs" in signature
    one, _ = corpus_bleu(["a cat sat on the mat", "hello there my friend"],
                         [["the cat sat on the mat"], ["hi there my friend"]])
    two, _ = corpus_bleu(["a cat sat on the mat", "hello there my friend"],
                         [["the cat sat on the mat", "a cat sat on the mat"], ["hi there my friend"]])
    assert 0 < one < two < 100


def write_pairs(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def test_held_out_sources_never_occur_in_training_and_keep_all_their_translations(tmp_path):
    pairs = [("a b", "B A"), ("a b", "b a !"), ("c d", "D C"), ("e f", "F E"), ("g h", "H G"),
             ("a b c d e f g h a b c", "too long")]
    data = load_translation_data(f"tsv:{write_pairs(tmp_path / 'p.tsv', pairs)}", "x", "y", max_words=10,
                                 test_sources=2, seed=3)
    assert len(data.test_sources) == 2 and len(data.train_pairs) + sum(map(len, data.test_references)) == 5
    assert not set(data.test_sources) & {s for s, _ in data.train_pairs}
    for source, references in zip(data.test_sources, data.test_references):
        assert references == [t for s, t in pairs if s == source]
    assert data.spec == {"pairs": f"tsv:{tmp_path / 'p.tsv'}", "source": "x", "target": "y", "max_words": 10,
                         "limit": None, "test_sources": 2, "decode_errors": "strict", "seed": 3}


def test_detokenize_joins_apostrophes_and_hyphens_and_attaches_punctuation():
    assert detokenize(["où", "as", "-", "tu", "mis", "mes", "clefs", "?"]) == "où as-tu mis mes clefs?"
    assert detokenize(["il", "n", "'", "aime", "pas", "ça", ",", "non", "."]) == "il n'aime pas ça, non."
    assert detokenize([]) == "" and detokenize(["a", "b"]) == "a b"


def test_encoded_pairs_shift_the_target_by_one_step():
    pairs = [("a b", "c d e"), ("f", "g")]
    source_vocabulary, target_vocabulary = build_vocabularies(pairs)
    source, target_in, target_out = encode_pairs(pairs, source_vocabulary, target_vocabulary)
    sos, eos = target_vocabulary.index("<sos>"), target_vocabulary.index("<eos>")
    c, d, e, g = (target_vocabulary.index(w) for w in "cdeg")
    np.testing.assert_array_equal(target_in, [[sos, c, d, e], [sos, g, 0, 0]])
    np.testing.assert_array_equal(target_out, [[c, d, e, eos], [g, eos, 0, 0]])
    assert source.shape == (2, 2) and source[1, 1] == 0


def test_wrong_languages_for_a_known_pair_file_are_refused():
    with pytest.raises(ValueError, match="fra-eng holds en and fr sentences"):
        load_translation_data("fra-eng", "en", "ko")
    with pytest.raises(ValueError, match="--pairs must be one of"):
        load_translation_data("deu-eng")


@pytest.mark.skipif(not (DATA_DIR / "kor-eng" / "kor.txt").is_file(), reason="kor.txt not in SEQLAB_DATA_DIR")
def test_korean_pairs_split_by_english_sentence(monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(DATA_DIR))
    data = load_translation_data("kor-eng", "en", "ko", max_words=10, test_sources=500, seed=0)
    assert len(data.test_sources) == 500 and len(data.train_pairs) > 4500
    assert not set(data.test_sources) & {s for s, _ in data.train_pairs}
    reverse = load_translation_data("kor-eng", "ko", "en", max_words=10, test_sources=500, seed=0)
    assert reverse.train_pairs[0][1].isascii() and not reverse.train_pairs[0][0].isascii()


# ---------------------------------------------------------------- command line
def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="seqlab")
    translate.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.handler(args)


def test_command_line_trains_translates_and_evaluates(tmp_path, capsys):
    pytest.importorskip("sacrebleu")
    pytest.importorskip("matplotlib")
    tsv = write_pairs(tmp_path / "pairs.tsv", reversal_pairs(400, seed=5))
    model = str(tmp_path / "model")
    assert run_cli("translate", "train", "--pairs", f"tsv:{tsv}", "--model", model, "--epochs", "1",
                   "--units", "8", "--embedding-dim", "8", "--test-sources", "20", "--attention", "additive") == 0
    assert "BLEU" in capsys.readouterr().out
    heatmap = tmp_path / "attention.png"
    assert run_cli("translate", "--model", model, "--beam", "2", "--show-attention", str(heatmap), "a b c") == 0
    assert heatmap.is_file()
    assert run_cli("translate", "run", "--model", model, "a b", "c d") == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert run_cli("translate", "a b", "--model", model) == 0           # options after the text, too
    assert run_cli("translate", "evaluate", "--model", model, "--examples", "1") == 0
    assert "held-out sentences" in capsys.readouterr().out


def test_command_line_errors_are_one_clear_line(tmp_path, capsys, trained_reverser):
    trained_reverser.save(tmp_path / "model")
    assert run_cli("translate", "--model", str(tmp_path / "model"), "zebra") == 1
    assert "None of the words of 'zebra'" in capsys.readouterr().err
    assert run_cli("translate", "--model", str(tmp_path / "missing"), "a b") == 1
    assert "No model directory" in capsys.readouterr().err
    assert run_cli("translate", "train", "--pairs", "deu-eng", "--model", str(tmp_path / "m")) == 1
    assert "--pairs must be one of" in capsys.readouterr().err
    assert run_cli("translate") == 2
