"""Translation with subword vocabularies and chrF: the CLI trains, saves and decodes pieces; the scorers agree."""

from __future__ import annotations

import pytest

pytest.importorskip("sentencepiece")
sacrebleu = pytest.importorskip("sacrebleu")

from seqlab.apps.translate import (TranslationInputError, build_vocabularies, corpus_chrf, detokenize,  # noqa: E402
                                   encode_pairs, load_translator, make_tokenizer, make_tokenizers, text_of)
from seqlab.data import SubwordTokenizer  # noqa: E402
from test_translate import reversal_pairs, run_cli, write_pairs  # noqa: E402

FRENCH = ["Je ne m'inquiète pas pour ce genre de trucs.", "Où as-tu mis mes clés ?", "Il n'aime pas le café, non.",
          "Nous devons partir maintenant !", "C'est l'homme qu'elle a vu hier."]


def test_separate_and_joint_subword_vocabularies():
    pairs = [(f"{s} xyz", f"{t} zyx") for s, t in reversal_pairs(300, seed=2)]
    source_tokenizer, target_tokenizer = make_tokenizers(pairs, "subword", vocab_size=30)
    assert isinstance(source_tokenizer, SubwordTokenizer) and source_tokenizer != target_tokenizer
    source, target = build_vocabularies(pairs, tokenizers=(source_tokenizer, target_tokenizer))
    assert source.tokenizer is source_tokenizer and "<sos>" in target and "<sos>" not in source
    encoded_source, target_in, target_out = encode_pairs(pairs[:2], source, target)
    assert (target_in[:, 0] == target.index("<sos>")).all()
    pieces = [target.token(i) for i in target_out[0] if i > 0][:-1]      # without <eos>
    assert text_of(pieces, target.tokenizer) == pairs[0][1]
    joint = make_tokenizers(pairs, "subword", vocab_size=30, joint=True)
    assert joint[0] is joint[1]
    both, same = build_vocabularies(pairs, tokenizers=joint, joint=True)
    assert both is same and "<eos>" in both and both.unknown_index not in both.encode(pairs[0][0] + " " + pairs[0][1])
    with pytest.raises(ValueError, match="needs one tokenizer"):
        build_vocabularies(pairs, tokenizers=(source_tokenizer, target_tokenizer), joint=True)
    with pytest.raises(ValueError, match="the tokenizer must be one of"):
        make_tokenizers(pairs, "bytes")


def test_word_outputs_score_the_same_from_their_text():
    """A word model's text and tokens agree: tokenizing the text gives the tokens (as for a subword model's)."""
    tokenizer = make_tokenizer()
    for sentence in FRENCH:
        tokens = tokenizer(sentence)
        assert tokenizer(detokenize(tokens)) == tokens
        assert text_of(tokens, tokenizer) == detokenize(tokens)


def test_chrf_is_sacrebleus_with_every_reference():
    hypotheses = ["je suis froid.", "il n'aime pas le café."]
    references = [["j'ai froid.", "je suis froid."], ["il n'aime pas le café."]]
    score, signature = corpus_chrf(hypotheses, references)
    assert score == pytest.approx(100.0)
    wrong, _ = corpus_chrf(["tu es chaud.", "elle aime le thé."], references)
    expected = sacrebleu.CHRF().corpus_score(["tu es chaud.", "elle aime le thé."],
                                             [["j'ai froid.", "il n'aime pas le café."], ["je suis froid.", None]])
    assert wrong == pytest.approx(expected.score) and 0 < wrong < 60
    assert signature.startswith("nrefs:var|case:mixed|eff:yes|nc:6|nw:0")


def test_command_line_trains_on_joint_subwords_and_decodes_text(tmp_path, capsys):
    pairs = [(" ".join(w * 2 for w in s.split()), " ".join(w * 2 for w in t.split()))
             for s, t in reversal_pairs(400, seed=5)]                     # 'aa cc' -> 'cc aa'
    tsv = write_pairs(tmp_path / "pairs.tsv", pairs)
    model_dir = tmp_path / "model"
    assert run_cli("translate", "train", "--pairs", f"tsv:{tsv}", "--model", str(model_dir), "--epochs", "1",
                   "--arch", "transformer", "--embedding-dim", "16", "--heads", "2", "--layers", "1",
                   "--ff-dim", "16", "--tokenizer", "subword", "--vocab-size", "24", "--subword-model", "bpe",
                   "--joint-vocabulary", "--test-sources", "20") == 0
    assert "chrF" in capsys.readouterr().out
    model = load_translator(model_dir)
    assert isinstance(model.source_vocabulary.tokenizer, SubwordTokenizer) and model.share_embeddings
    assert model.source_vocabulary == model.target_vocabulary
    translation = model.translate(["aa bb cc"], beam_width=2)[0]
    assert "▁" not in translation.text and translation.text == model.target_vocabulary.tokenizer.decode(
        translation.tokens)
    with pytest.raises(TranslationInputError, match="Nothing to translate"):
        model.translate([" "])
    unknown = model.source_vocabulary.encode("✓ ✓")        # '▁' pieces are known, '✓' is not
    assert model.source_vocabulary.unknown_index in unknown
    assert model.translate(["✓ ✓"])[0].text == model.translate(["✓ ✓"])[0].text   # deterministic, and text
    assert run_cli("translate", "evaluate", "--model", str(model_dir), "--examples", "0") == 0
    assert "chrF" in capsys.readouterr().out
    assert run_cli("translate", "train", "--pairs", f"tsv:{tsv}", "--model", str(tmp_path / "other"),
                   "--vocab-size", "100") == 1
    assert "--vocab-size means nothing for --tokenizer word" in capsys.readouterr().err
