"""The transformer translator: cached decoding equals teacher forcing; it learns, saves, refuses bad text; the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqlab.apps.translate import (TransformerTranslator, TranslationInputError, attention_figure, build_vocabularies,
                                   encode_pairs)
from seqlab.apps.translate.settings import Settings
from seqlab.generation.decoding import beam_search, greedy_decode
from seqlab.saving import load_model
from seqlab.seeding import set_seed
from seqlab.training import Adam, InverseSquareRootDecay, SparseCategoricalCrossentropy
from test_translate import reversal_pairs, run_cli, write_pairs


def small_transformer(seed: int = 0, **options) -> TransformerTranslator:
    source, target = build_vocabularies(reversal_pairs(200, seed=1))
    set_seed(seed)
    settings = dict(embed_dim=16, heads=2, ff_dim=32, encoder_layers=2, decoder_layers=2, dropout=0.0,
                    max_output_length=8)
    return TransformerTranslator(source, target, **{**settings, **options}).eval()


@pytest.mark.parametrize("options", [{}, {"norm_first": False, "positions": "learned"}])
def test_cached_steps_equal_the_teacher_forced_decoder(options):
    model = small_transformer(**options).double()
    source = model.encode_sources(["a b c", "d e"])
    target_in = torch.tensor([[1, 5, 6, 7], [1, 8, 9, 0]])
    with torch.no_grad():
        teacher_forced = torch.log_softmax(model((source, target_in)), -1)
        state, steps = model.start(source), []
        for t in range(target_in.shape[1]):
            log_probs, state, weights = model.decode_step(target_in[:, t], state)
            steps.append(log_probs)
            assert weights.shape == (2, source.shape[1])
            torch.testing.assert_close(weights.sum(-1), torch.ones(2, dtype=torch.float64))
            assert weights[1, 2:].abs().max() == 0  # "d e" is padded to three tokens: nothing on the padding
    torch.testing.assert_close(torch.stack(steps, 1), teacher_forced, rtol=1e-10, atol=1e-10)


def test_beam_search_reorders_the_caches_with_its_beams():
    """Every finished hypothesis' log-probability equals the teacher-forced score of its tokens."""
    model = small_transformer(seed=3)
    source = model.encode_sources(["a b c d"])
    hypotheses = beam_search(model, model.start(source), model.sos, model.eos, beam_width=4, max_length=6)
    assert len(hypotheses) >= 4
    with torch.no_grad():
        for hypothesis in hypotheses[:4]:
            ids = [model.sos, *hypothesis.tokens]
            outputs = hypothesis.tokens + ([model.eos] if hypothesis.finished else [])
            log_probs = torch.log_softmax(model((source, torch.tensor([ids[:len(outputs)]]))), -1)[0]
            expected = sum(log_probs[t, token].item() for t, token in enumerate(outputs))
            assert math.isclose(hypothesis.log_probability, expected, rel_tol=1e-4, abs_tol=1e-4)
    width_one = beam_search(model, model.start(source), model.sos, model.eos, beam_width=1, max_length=6)[0]
    greedy = greedy_decode(model, model.start(source), 1, model.sos, model.eos, max_length=6)[0]
    assert width_one.tokens == greedy.tokens


@pytest.fixture(scope="module")
def trained_transformer() -> TransformerTranslator:
    pairs = reversal_pairs(2000, seed=0)
    source_vocabulary, target_vocabulary = build_vocabularies(pairs)
    x, target_in, target_out = encode_pairs(pairs, source_vocabulary, target_vocabulary)
    set_seed(0)
    model = TransformerTranslator(source_vocabulary, target_vocabulary, embed_dim=32, heads=4, ff_dim=64,
                                  encoder_layers=2, decoder_layers=2, dropout=0.0, max_output_length=8)
    model.compile(Adam(learning_rate=InverseSquareRootDecay(3e-3, warmup_steps=30)),
                  SparseCategoricalCrossentropy(from_logits=True, ignore_class=0, label_smoothing=0.1), device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.fit((x, target_in), target_out, batch_size=64, epochs=8, seed=0, verbose=0)
    torch.set_num_threads(threads)
    return model


def test_tiny_transformer_learns_to_reverse_sequences(trained_transformer):
    held_out = reversal_pairs(100, seed=7)
    outputs = trained_transformer.translate([source for source, _ in held_out])
    correct = sum(output.text == target for output, (_, target) in zip(outputs, held_out))
    assert correct >= 90, f"{correct}/100 reversed"
    beamed = trained_transformer.translate(["a b c d"], beam_width=3)[0]
    assert beamed.text == "d c b a" and beamed.attention.shape == (5, 4)
    assert beamed.attention[0].argmax() == 3  # the first output word reads the last source word


def test_saved_transformer_restores_and_translates_alike(tmp_path, trained_transformer):
    trained_transformer.save(tmp_path / "model")
    restored = load_model(tmp_path / "model", compile=False)
    assert isinstance(restored, TransformerTranslator)
    texts = ["a b c", "h g f e"]
    assert [t.text for t in restored.translate(texts)] == [t.text for t in trained_transformer.translate(texts)]


def test_label_smoothing_is_cross_entropy_against_the_smoothed_targets():
    logits = torch.randn(3, 5, dtype=torch.float64)
    labels = torch.tensor([4, 0, 2])
    smoothed = torch.full((3, 5), 0.1 / 5, dtype=torch.float64)
    smoothed[torch.arange(3), labels] += 0.9
    expected = -(smoothed * torch.log_softmax(logits, -1)).sum(-1).mean()
    got = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(labels, logits)
    torch.testing.assert_close(got, expected, check_dtype=False)
    torch.testing.assert_close(got, torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1),
                               check_dtype=False)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        SparseCategoricalCrossentropy(label_smoothing=1.0)


def test_inverse_square_root_schedule():
    schedule = InverseSquareRootDecay(1e-3, warmup_steps=100)
    assert schedule(0) == pytest.approx(1e-5) and schedule(99) == pytest.approx(1e-3)
    assert schedule(399) == pytest.approx(5e-4) and schedule(9999) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="warmup_steps >= 1"):
        InverseSquareRootDecay(1e-3, warmup_steps=0)


def test_settings_and_model_refuse_bad_combinations():
    with pytest.raises(ValueError, match="divisible by heads=3"):
        Settings(arch="transformer", embedding_dim=16, heads=3)
    source, target = build_vocabularies(reversal_pairs(50, seed=1))
    with pytest.raises(ValueError, match="share_embeddings needs one vocabulary"):
        TransformerTranslator(source, target, embed_dim=8, heads=2, ff_dim=8, share_embeddings=True)
    with pytest.raises(ValueError, match="positions must be 'sinusoidal' or 'learned'"):
        TransformerTranslator(source, target, embed_dim=8, heads=2, ff_dim=8, positions="rotary")
    shared = TransformerTranslator(target, target, embed_dim=8, heads=2, ff_dim=8)
    assert shared.share_embeddings and shared.target_embedding is shared.source_embedding


def test_command_line_trains_a_transformer_and_refuses_recurrent_options(tmp_path, capsys):
    pytest.importorskip("sacrebleu")
    tsv = write_pairs(tmp_path / "pairs.tsv", reversal_pairs(400, seed=5))
    model = str(tmp_path / "model")
    assert run_cli("translate", "train", "--pairs", f"tsv:{tsv}", "--model", model, "--epochs", "1",
                   "--arch", "transformer", "--embedding-dim", "16", "--heads", "2", "--layers", "1",
                   "--ff-dim", "16", "--warmup-steps", "5", "--label-smoothing", "0.1", "--test-sources", "20") == 0
    assert "BLEU" in capsys.readouterr().out
    assert run_cli("translate", "--model", model, "--beam", "2", "a b c") == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    assert run_cli("translate", "train", "--pairs", f"tsv:{tsv}", "--model", str(tmp_path / "other"),
                   "--arch", "transformer", "--cell", "lstm") == 1
    assert "--cell means nothing for --arch transformer" in capsys.readouterr().err


def test_each_heads_cross_attention_is_drawn_side_by_side(tmp_path, trained_transformer, capsys):
    pytest.importorskip("matplotlib")
    mean = trained_transformer.translate(["a b c"])[0]
    trained_transformer.attention_heads = "each"
    try:
        each = trained_transformer.translate(["a b c"])[0]
    finally:
        trained_transformer.attention_heads = "mean"
    heads = trained_transformer.heads
    assert mean.attention.shape == (len(mean.output_labels), 3)
    assert each.attention.shape == (len(each.output_labels), heads, 3) and each.tokens == mean.tokens
    np.testing.assert_allclose(each.attention.mean(axis=1), mean.attention, atol=1e-6)
    np.testing.assert_allclose(each.attention.sum(axis=-1), 1.0, atol=1e-5)
    figure = attention_figure(each)
    assert len([a for a in figure.axes if a.get_label() != "<colorbar>"]) == heads
    model_dir = tmp_path / "model"
    trained_transformer.save(model_dir)
    png = tmp_path / "heads.png"
    assert run_cli("translate", "--model", str(model_dir), "--show-attention", str(png), "--attention-heads",
                   "each", "a b c") == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_head_is_refused_for_a_recurrent_translator(tmp_path, capsys):
    from test_translate import small_translator
    small_translator().save(tmp_path / "rnn")
    assert run_cli("translate", "--model", str(tmp_path / "rnn"), "--attention-heads", "each", "a b") == 1
    assert "--attention-heads each is for transformer translators" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [("", "Nothing to translate"), ("zzz qqq", "None of the words")])
def test_empty_or_unknown_text_is_refused_clearly(trained_transformer, text, message):
    with pytest.raises(TranslationInputError, match=message):
        trained_transformer.translate([text])
