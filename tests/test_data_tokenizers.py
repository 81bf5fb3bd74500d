"""Tokenizer rules: Unicode words, punctuation, characters, Korean jamo and morphemes."""
import importlib.util
import pickle
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.data import (CharTokenizer, JamoTokenizer, KiwiTokenizer, MissingDependencyError,
                         WordTokenizer, compose_jamo, decompose_jamo, tokenizer_from_config)
from seqlab.data import korean
from seqlab.data.tokenizers import WORD_PATTERN

HAS_KIWI = importlib.util.find_spec("kiwipiepy") is not None
# Hangul conjoining jamo: text already holding them recomposes to syllables (see JamoTokenizer).
NO_CONJOINING_JAMO = st.characters(blacklist_categories=("Cs",),
                                   blacklist_characters=[chr(c) for c in range(0x1100, 0x1200)])


class TestWordTokenizer:
    def test_splits_on_non_letters_and_digits_in_any_script(self):
        text = "Don't stop—café 2nd já 한국어! x_y naïve"
        assert WordTokenizer()(text) == ["Don", "t", "stop", "café", "2nd", "já", "한국어",
                                         "x", "y", "naïve"]

    def test_digits_of_other_scripts_and_mixed_hangul_latin(self):
        assert WordTokenizer()("٣٤ apples, 영화OST 3개") == ["٣٤", "apples", "영화OST", "3개"]

    def test_lowercase(self):
        assert WordTokenizer(lowercase=True)("The FILM, Ärger") == ["the", "film", "ärger"]

    def test_keep_punctuation_gives_each_mark_its_own_token(self):
        tokens = WordTokenizer(keep_punctuation=True)("Wow!! It's <br />great_.")
        assert tokens == ["Wow", "!", "!", "It", "'", "s", "<", "br", "/", ">", "great", "_", "."]

    def test_decomposed_accents_stay_inside_the_word(self):
        decomposed = unicodedata.normalize("NFD", "café résumé")
        assert WordTokenizer()(decomposed) == ["café", "résumé"]
        # Without NFC the words stay whole but keep their decomposed spelling, so the same word
        # would get two vocabulary entries: why NFC is the default.
        unnormalized = WordTokenizer(normalize=None)(decomposed)
        assert unnormalized == decomposed.split() and unnormalized != ["café", "résumé"]

    def test_combining_marks_that_nfc_cannot_merge_stay_inside_the_word(self):
        assert WordTokenizer()("Ọlọ́run n̈oël") == ["Ọlọ́run", "n̈oël"]
        # lowercasing "İ" gives "i" + U+0307 COMBINING DOT ABOVE, which has no precomposed form
        assert WordTokenizer(lowercase=True)("İZMİR") == ["i\u0307zmi\u0307r"]
        assert WordTokenizer(keep_punctuation=True)("Ọlọ́run, n̈oël!") == ["Ọlọ́run", ",", "n̈oël", "!"]
        # Devanagari vowel signs and virama, and Chakma's (beyond the BMP), are marks too
        assert WordTokenizer()("हिन्दी 𑄃𑄧𑄁.") == ["हिन्दी", "𑄃𑄧𑄁"]

    @settings(max_examples=300, deadline=None)
    @given(st.text(st.characters(blacklist_categories=("Cs",)))
           | st.text(st.sampled_from("ab1_ .\u0301\u0323\u0308\u093f\u20dd\U00011127\U000e0100é한")))
    def test_words_are_maximal_runs_of_letters_digits_and_marks(self, text):
        words, word = [], ""
        for character in text + " ":
            if character.isalnum() or unicodedata.category(character).startswith("M"):
                word += character
            elif word:
                words.append(word)
                word = ""
        assert WordTokenizer(normalize=None)(text) == words

    def test_custom_pattern_with_groups_returns_whole_matches(self):
        tokenizer = WordTokenizer(pattern=r"(\d+)|[a-z]+")
        assert tokenizer("abc 123 DEF x9") == ["abc", "123", "x", "9"]

    def test_pattern_and_keep_punctuation_conflict(self):
        with pytest.raises(ValueError, match="pass only one"):
            WordTokenizer(pattern=r"\S+", keep_punctuation=True)

    def test_empty_and_punctuation_only_text(self):
        assert WordTokenizer()("") == []
        assert WordTokenizer()(" ?!... ") == []

    @settings(max_examples=300, deadline=None)
    @given(st.text(st.characters(max_codepoint=127)) | st.text(st.sampled_from("ab_1 .-\t\x1céz한")))
    def test_ascii_fast_path_equals_the_regex(self, text):
        regex_only = WordTokenizer(pattern=WORD_PATTERN)  # a pattern turns the fast path off
        assert WordTokenizer()(text) == regex_only(text)
        assert WordTokenizer(lowercase=True)(text) == WordTokenizer(lowercase=True, pattern=WORD_PATTERN)(text)

    def test_decode_joins_with_spaces(self):
        assert WordTokenizer().decode(["a", "b"]) == "a b"


class TestCharTokenizer:
    def test_one_token_per_code_point(self):
        assert CharTokenizer()("Hi 한국\n") == ["H", "i", " ", "한", "국", "\n"]

    @settings(max_examples=200, deadline=None)
    @given(st.text(st.characters(blacklist_categories=("Cs",))))
    def test_round_trip_any_text(self, text):
        tokenizer = CharTokenizer()
        assert tokenizer.decode(tokenizer(text)) == text


class TestJamo:
    def test_decomposes_syllables_into_initial_medial_final(self):
        assert JamoTokenizer()("한국") == ["\u1112", "\u1161", "\u11ab", "\u1100", "\u116e", "\u11a8"]

    def test_syllable_without_final_gives_two_jamo(self):
        assert decompose_jamo("가") == "\u1100\u1161"

    def test_first_and_last_syllables(self):
        assert decompose_jamo("가힣") == "\u1100\u1161" + "\u1112\u1175\u11c2"
        assert compose_jamo(decompose_jamo("가힣")) == "가힣"

    def test_initial_and_final_of_the_same_consonant_are_different_tokens(self):
        tokens = JamoTokenizer()("각")
        assert tokens[0] != tokens[2] and len(set(tokens)) == 3

    def test_matches_unicode_nfd(self):
        text = "대한민국 만세, Hangul 읽기"
        assert decompose_jamo(text) == unicodedata.normalize("NFD", text)

    def test_other_characters_unchanged(self):
        assert JamoTokenizer()("a ㅋㅋ!") == ["a", " ", "ㅋ", "ㅋ", "!"]

    def test_decomposed_input_tokenizes_like_precomposed(self):
        tokenizer = JamoTokenizer()
        nfd = unicodedata.normalize("NFD", "한국어")
        assert tokenizer(nfd) == tokenizer("한국어")
        assert tokenizer.decode(tokenizer(nfd)) == "한국어"

    def test_every_syllable_round_trips(self):
        syllables = "".join(chr(c) for c in range(0xAC00, 0xD7A4))
        decomposed = decompose_jamo(syllables)
        assert len(decomposed) == 19 * 21 * 2 + 19 * 21 * 27 * 3
        assert compose_jamo(decomposed) == syllables

    @settings(max_examples=300, deadline=None)
    @given(st.text(NO_CONJOINING_JAMO) | st.text(st.sampled_from("가각힣한 국어ㄱㅏ!a")))
    def test_round_trip(self, text):
        tokenizer = JamoTokenizer()
        assert tokenizer.decode(tokenizer(text)) == text


def test_configs_rebuild_equal_tokenizers():
    for tokenizer in (WordTokenizer(lowercase=True, keep_punctuation=True),
                      WordTokenizer(pattern=r"\S+"), CharTokenizer(), JamoTokenizer()):
        rebuilt = tokenizer_from_config(tokenizer.to_config())
        assert type(rebuilt) is type(tokenizer)
        assert rebuilt.to_config() == tokenizer.to_config()
        assert rebuilt("Hi, 한국 x") == tokenizer("Hi, 한국 x")


def test_unknown_config_type_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown tokenizer type 'Nope'.*CharTokenizer"):
        tokenizer_from_config({"type": "Nope"})


HOSTILE_PATTERN = r"(a+)+$"  # backtracks for 2**n steps on "aaa...ab"


def test_a_pattern_from_a_file_runs_only_if_seqlab_writes_it(monkeypatch):
    monkeypatch.delenv("SEQLAB_TRUST_TOKENIZER_PATTERNS", raising=False)
    hostile = {"type": "WordTokenizer", "lowercase": False, "keep_punctuation": False,
               "pattern": HOSTILE_PATTERN, "normalize": None}
    with pytest.raises(ValueError, match=r"custom regular expression '\(a\+\)\+\$'.*"
                                         r"SEQLAB_TRUST_TOKENIZER_PATTERNS=1"):
        tokenizer_from_config(hostile)
    assert tokenizer_from_config(hostile, trust_pattern=True).pattern == HOSTILE_PATTERN
    monkeypatch.setenv("SEQLAB_TRUST_TOKENIZER_PATTERNS", "1")
    assert tokenizer_from_config(hostile)("b aa") == ["aa"]
    monkeypatch.delenv("SEQLAB_TRUST_TOKENIZER_PATTERNS")
    tfds = WordTokenizer(pattern=r"\w+", normalize=None)  # the pattern seqlab's tfds preset writes
    assert tokenizer_from_config(tfds.to_config())("a_b c") == ["a_b", "c"]


def test_a_vocabulary_file_with_a_hostile_pattern_is_refused(monkeypatch):
    monkeypatch.delenv("SEQLAB_TRUST_TOKENIZER_PATTERNS", raising=False)
    from seqlab.data import Vocabulary
    saved = Vocabulary.build([["aa"]], tokenizer=WordTokenizer(pattern=HOSTILE_PATTERN)).to_json()
    with pytest.raises(ValueError, match="seqlab did not write"):
        Vocabulary.from_json(saved)


def test_missing_kiwipiepy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # makes `import kiwipiepy` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'seqlab\[korean\]'"):
        KiwiTokenizer()


@pytest.fixture(scope="module")
def kiwi():
    if not HAS_KIWI:
        pytest.skip("kiwipiepy (optional extra 'korean') is not installed")
    return KiwiTokenizer()


@pytest.fixture(scope="module")
def tagged_kiwi(kiwi):
    return KiwiTokenizer(with_tags=True, analyzer=kiwi._kiwi)


class TestKiwi:
    def test_morphemes(self, kiwi):
        assert kiwi("아버지가 방에 들어가신다") == ["아버지", "가", "방", "에", "들어가", "시", "ᆫ다"]

    def test_tags_and_deterministic(self, kiwi, tagged_kiwi):
        assert tagged_kiwi("영화가 재밌었어요")[:2] == ["영화/NNG", "가/JKS"]
        assert kiwi("영화가 재밌었어요") == kiwi("영화가 재밌었어요")

    def test_decode_with_tags_rebuilds_text(self, tagged_kiwi):
        assert tagged_kiwi.decode(tagged_kiwi("영화가 재밌었어요")) == "영화가 재밌었어요"

    def test_pickles_for_dataloader_workers(self, kiwi, monkeypatch):
        built = []  # the copy builds its own analyzer; reuse ours to save a second of loading
        monkeypatch.setattr(korean, "_new_kiwi", lambda: built.append(1) or kiwi._kiwi)
        copy = pickle.loads(pickle.dumps(kiwi))
        assert built == [1] and copy.with_tags is False
        assert copy("방에 들어가") == kiwi("방에 들어가") == ["방", "에", "들어가", "어"]
        assert kiwi.to_config() == {"type": "KiwiTokenizer", "with_tags": False,
                                    "normalize_coda": False}

    def test_custom_analyzer_refuses_to_pickle(self, tagged_kiwi):
        with pytest.raises(TypeError, match="custom analyzer.*num_workers=0"):
            pickle.dumps(tagged_kiwi)
