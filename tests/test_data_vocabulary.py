"""Vocabulary indices (0 pad, n+1 unknown), frequency order, limits, OOV counts, JSON."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.data import CharTokenizer, JamoTokenizer, Vocabulary, WordTokenizer

TRAIN = [["the", "cat", "sat"], ["the", "dog", "sat"], ["the", "cat"], ["a", "bird"]]


@pytest.fixture
def vocab():
    return Vocabulary.build(TRAIN)


def test_pad_is_zero_tokens_by_frequency_unknown_is_n_plus_one(vocab):
    # counts: the 3, cat 2, sat 2, dog 1, a 1, bird 1; ties keep first appearance
    assert vocab.tokens == ["<pad>", "the", "cat", "sat", "dog", "a", "bird", "<unk>"]
    assert len(vocab) == 6 + 2
    assert vocab.pad_index == 0 and vocab.unknown_index == 7
    assert vocab.counts == [3, 2, 2, 1, 1, 1]


def test_encode_maps_unknown_tokens_to_n_plus_one(vocab):
    assert vocab.encode(["the", "bird", "flew", "cat"]) == [1, 6, 7, 2]


def test_pad_and_unknown_spellings_in_text_are_unknown_never_zero(vocab):
    assert vocab.encode(["<pad>", "<unk>"]) == [7, 7]
    assert "<pad>" not in vocab and "the" in vocab


def test_reserved_spellings_in_training_data_are_not_counted():
    vocab = Vocabulary.build([["<pad>", "x", "<unk>", "<pad>"]])
    assert vocab.tokens == ["<pad>", "x", "<unk>"]


def test_min_freq_drops_rare_tokens():
    vocab = Vocabulary.build(TRAIN, min_freq=2)
    assert vocab.tokens == ["<pad>", "the", "cat", "sat", "<unk>"]
    assert vocab.encode(["dog"]) == [4]


def test_max_size_keeps_the_most_frequent():
    vocab = Vocabulary.build(TRAIN, max_size=2)
    assert vocab.tokens == ["<pad>", "the", "cat", "<unk>"]


def test_specials_follow_padding_and_are_never_counted():
    vocab = Vocabulary.build([["<sos>", "hi", "<eos>"], ["hi", "there"]], specials=("<sos>", "<eos>"))
    assert vocab.tokens == ["<pad>", "<sos>", "<eos>", "hi", "there", "<unk>"]
    assert vocab.encode(["<sos>", "hi", "?", "<eos>"]) == [1, 3, 5, 2]
    assert vocab.counts == [2, 1]


def test_ties_break_by_first_appearance():
    vocab = Vocabulary.build([["z", "y", "x"], ["x", "y", "z"]])
    assert vocab.tokens[1:4] == ["z", "y", "x"]


def test_oov_counts_and_rate(vocab):
    vocab.encode(["the", "zebra"])
    vocab.encode_batch([["okapi", "cat", "sat", "the"]])
    assert (vocab.oov.tokens, vocab.oov.unknown) == (6, 2)
    assert vocab.oov.rate == pytest.approx(2 / 6)
    vocab.oov.reset()
    assert (vocab.oov.tokens, vocab.oov.unknown, vocab.oov.rate) == (0, 0, 0.0)


def test_decode_single_and_batch(vocab):
    assert vocab.decode([1, 2, 7, 0, 0]) == ["the", "cat", "<unk>"]
    assert vocab.decode([1, 0], skip_padding=False) == ["the", "<pad>"]
    assert vocab.decode(torch.tensor([3, 4])) == ["sat", "dog"]
    assert vocab.decode_batch(torch.tensor([[1, 0], [5, 6]])) == [["the"], ["a", "bird"]]
    with pytest.raises(IndexError, match="index 8 is outside the vocabulary"):
        vocab.decode([8])


def test_text_needs_a_tokenizer(vocab):
    with pytest.raises(TypeError, match="has no tokenizer; pass its tokens"):
        vocab.encode("the cat")
    with pytest.raises(TypeError, match="has no tokenizer"):
        Vocabulary.build(["the cat"])


def test_tokenizer_turns_texts_into_tokens():
    vocab = Vocabulary.build(["The cat sat.", "the CAT!"], tokenizer=WordTokenizer(lowercase=True))
    assert vocab.tokens == ["<pad>", "the", "cat", "sat", "<unk>"]
    assert vocab.encode("The dog sat") == [1, 4, 3]
    assert vocab.encode_batch(["cat", "sat the"]) == [[2], [3, 1]]
    assert vocab.decode_text([1, 2]) == "the cat"


def test_character_vocabulary_decodes_to_the_text():
    vocab = Vocabulary.build(["hello world"], tokenizer=CharTokenizer())
    assert vocab.tokens[1:3] == ["l", "o"]
    assert vocab.decode_text(vocab.encode("world")) == "world"


def test_empty_training_data_is_an_error():
    with pytest.raises(ValueError, match=r"training data \(0 texts\) has no tokens"):
        Vocabulary.build([])
    with pytest.raises(ValueError, match=r"\(2 texts\) has no tokens"):
        Vocabulary.build(["", "  "], tokenizer=WordTokenizer())


def test_min_freq_that_removes_everything_says_the_limit():
    with pytest.raises(ValueError, match="lower min_freq to at most 3"):
        Vocabulary.build(TRAIN, min_freq=4)


@pytest.mark.parametrize("arguments", [{"min_freq": 0}, {"max_size": 0}])
def test_invalid_limits(arguments):
    with pytest.raises(ValueError, match="must be at least 1"):
        Vocabulary.build(TRAIN, **arguments)


def test_duplicate_tokens_rejected():
    with pytest.raises(ValueError, match="repeated: \\['a'\\]"):
        Vocabulary(["a", "b", "a"])


def test_json_round_trip_keeps_indices_counts_and_tokenizer():
    tokenizer = WordTokenizer(lowercase=True, keep_punctuation=True)
    vocab = Vocabulary.build(["Hi, 한국! hi", "hi there"], specials=("<sos>",), tokenizer=tokenizer)
    restored = Vocabulary.from_json(vocab.to_json())
    assert restored == vocab
    assert restored.tokens == ["<pad>", "<sos>", "hi", ",", "한국", "!", "there", "<unk>"]
    assert restored.counts == vocab.counts == [3, 1, 1, 1, 1]
    assert restored.encode("HI 한국 nope") == [2, 4, 7]
    assert restored.tokenizer.to_config() == tokenizer.to_config()
    assert "한국" in vocab.to_json()  # readable UTF-8, not \\u escapes


def test_json_without_tokenizer_and_with_jamo():
    assert Vocabulary.from_json(Vocabulary.build(TRAIN).to_json()).tokenizer is None
    jamo = Vocabulary.build(["한국"], tokenizer=JamoTokenizer())
    assert Vocabulary.from_json(jamo.to_json()).decode_text(jamo.encode("국한")) == "국한"


def test_json_rejects_other_documents_and_versions():
    with pytest.raises(ValueError, match="not a seqlab vocabulary"):
        Vocabulary.from_json('{"tokens": []}')
    data = json.loads(Vocabulary.build(TRAIN).to_json()) | {"version": 99}
    with pytest.raises(ValueError, match="version 99 is not supported"):
        Vocabulary.from_json(json.dumps(data))


def test_tokenizer_without_config_cannot_be_saved():
    vocab = Vocabulary.build(["a b"], tokenizer=str.split)
    with pytest.raises(TypeError, match="has no to_config"):
        vocab.to_json()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=6), min_size=1).filter(any))
def test_indices_are_dense_and_frequency_sorted(token_lists):
    vocab = Vocabulary.build(token_lists)
    n = len(vocab) - 2
    assert vocab.unknown_index == n + 1
    assert sorted(vocab.encode(vocab.tokens[1:-1])) == list(range(1, n + 1))
    assert vocab.counts == sorted(vocab.counts, reverse=True)
    assert sum(vocab.counts) == sum(map(len, token_lists))
