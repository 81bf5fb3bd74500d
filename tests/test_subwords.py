"""Subword tokens (sentencepiece): round trips, unknown characters, empty lines, saving, determinism, errors."""

from __future__ import annotations

import pickle
import unicodedata

import pytest

pytest.importorskip("sentencepiece")

from seqlab.data import SubwordTokenizer, Vocabulary, tokenizer_from_config  # noqa: E402

KOREAN = [f"{who} {where} {verb}" for who in ("저는", "그는", "우리는", "학생들은", "선생님은")
          for where in ("학교에", "도서관에", "교실에", "집에") for verb in ("갑니다.", "있습니다.", "옵니다.")]
ENGLISH = ["I am a student.", "He is not a student.", "We are going to school.", "The students are reading.",
           "Where did you put my keys?", "She doesn't like coffee."]


@pytest.fixture(scope="module")
def korean() -> SubwordTokenizer:
    return SubwordTokenizer.train(KOREAN * 5, vocab_size=60, model_type="bpe")


def test_decoding_the_pieces_gives_the_text_back(korean):
    english = SubwordTokenizer.train(ENGLISH * 20, vocab_size=80)   # unigram
    for tokenizer, texts in ((korean, KOREAN), (english, ENGLISH)):
        for text in texts:
            pieces = tokenizer(text)
            assert pieces[0].startswith("▁") and len(pieces) < len(text)
            assert tokenizer.decode(pieces) == text
    assert korean.decode(korean("학생들은 집에")) == "학생들은 집에"   # a new combination of known pieces


def test_frequent_words_stay_whole_and_rare_forms_are_split(korean):
    counts = {}
    for text in KOREAN:
        for piece in korean(text):
            counts[piece] = counts.get(piece, 0) + 1
    assert korean("저는 집에 갑니다.") == ["▁저는", "▁집에", "▁갑니다", "."]   # frequent words: one piece each
    assert len(korean("저는집에")) > 1              # a form never seen: known pieces
    assert all(count >= 12 for count in counts.values())


def test_unknown_characters_are_pieces_the_vocabulary_counts_as_unknown(korean):
    vocabulary = Vocabulary.build(KOREAN, tokenizer=korean)
    pieces = korean("저는 ✓ 집에")
    assert "✓" in pieces
    ids = vocabulary.encode("저는 ✓ 집에")
    assert len(ids) == len(pieces) and ids[pieces.index("✓")] == vocabulary.unknown_index
    assert vocabulary.unknown_index not in (ids[0], ids[-1])
    assert korean.decode(["▁저는", vocabulary.unknown_token]) == "저는 ⁇ "


def test_empty_lines_have_no_pieces_and_training_skips_them():
    tokenizer = SubwordTokenizer.train(["", "  ", *ENGLISH * 10], vocab_size=50)
    assert tokenizer("") == [] and tokenizer("   ") == [] and tokenizer.decode([]) == ""
    with pytest.raises(ValueError, match="no text"):
        SubwordTokenizer.train(["", " \n "], vocab_size=50)


def test_lowercase_and_nfkc_normalization():
    tokenizer = SubwordTokenizer.train(ENGLISH * 10, vocab_size=60, lowercase=True)
    assert tokenizer.decode(tokenizer("WHERE did YOU")) == "where did you"
    cased = SubwordTokenizer.train(ENGLISH * 10, vocab_size=60)
    assert cased.decode(cased("Where")) == "Where"
    decomposed = unicodedata.normalize("NFD", "학생")     # conjoining jamo, as macOS file names hold them
    assert cased(decomposed) == cased("학생")


def test_training_is_deterministic_and_the_vocabulary_size_is_a_soft_limit():
    first = SubwordTokenizer.train(KOREAN * 20, vocab_size=10_000)
    second = SubwordTokenizer.train(KOREAN * 20, vocab_size=10_000)
    assert first == second and first.model == second.model
    assert 8 < first.pieces < 10_000                # fewer pieces than asked: the texts have no more to give


def test_saved_with_a_vocabulary_and_pickled_it_tokenizes_the_same(korean):
    vocabulary = Vocabulary.build(KOREAN, tokenizer=korean)
    restored = Vocabulary.from_json(vocabulary.to_json())
    assert restored == vocabulary and restored.tokenizer == korean
    assert restored.encode("저는 학교에 갑니다.") == vocabulary.encode("저는 학교에 갑니다.")
    assert vocabulary.unknown_index not in vocabulary.encode("저는 학교에 갑니다.")
    assert tokenizer_from_config(korean.to_config()) == korean
    assert pickle.loads(pickle.dumps(korean))("저는 집에") == korean("저는 집에")
    assert len(vocabulary.to_json()) < 20_000      # NFKC in Python: no normalization table in the model


def test_bad_arguments_and_a_corrupt_model_are_clear_errors():
    with pytest.raises(ValueError, match="model_type must be one of"):
        SubwordTokenizer.train(ENGLISH, model_type="wordpiece")
    with pytest.raises(ValueError, match="vocab_size must be a whole number"):
        SubwordTokenizer.train(ENGLISH, vocab_size=2)
    with pytest.raises(ValueError, match="not a sentencepiece model"):
        SubwordTokenizer(b"not a model")
