"""Integration tests against the real published files, found through $SEQLAB_DATA_DIR.

Each test skips with a reason when the variable is unset or its file is absent
(`.ci/run` points it at ../shared/datasets). Loaders run with download=False,
so these tests never touch the network, and files are checked against sha256.
"""
import os
from collections import Counter
from pathlib import Path

import pytest
import torch

from seqlab.data import (CharTokenizer, LanguageModelWindows, Vocabulary, WordTokenizer,
                         find_dataset_file, truncate)
from seqlab.data.datasets import (load_gutenberg, load_nsmc, load_parallel, load_text_corpus,
                                  read_imdb, split_imdb)
from seqlab.data.datasets.imdb import IMDB_ARCHIVE


def require(relative: str) -> Path:
    """The file under $SEQLAB_DATA_DIR, or skip the test saying what is missing."""
    data_dir = os.environ.get("SEQLAB_DATA_DIR")
    if not data_dir:
        pytest.skip("SEQLAB_DATA_DIR is not set (point it at the shared datasets folder)")
    path = Path(data_dir) / relative
    if not path.exists():
        pytest.skip(f"{relative} is not in SEQLAB_DATA_DIR={data_dir}")
    return path


@pytest.fixture(scope="module")
def imdb_reviews():
    require(IMDB_ARCHIVE.name)
    # Read once (about 5 s for the 56 MB archive); the tests split it in memory.
    return read_imdb(find_dataset_file(IMDB_ARCHIVE, download=False), unlabeled=True)


class TestImdb:
    def test_published_split_is_25000_25000_balanced(self, imdb_reviews):
        assert len(imdb_reviews.train) == len(imdb_reviews.test) == 25_000
        assert imdb_reviews.train.label_counts() == imdb_reviews.test.label_counts() == {0: 12_500, 1: 12_500}
        assert len(imdb_reviews.unlabeled) == 50_000

    def test_line_breaks_stripped(self, imdb_reviews):
        texts = imdb_reviews.train.texts + imdb_reviews.test.texts + imdb_reviews.unlabeled
        assert not any("<br" in text for text in texts)
        assert all(text.strip() for text in texts)

    def test_labels_follow_the_folders(self, imdb_reviews):
        for split in (imdb_reviews.train, imdb_reviews.test):
            assert all(("/pos/" in i) == (label == 1) for i, label in zip(split.ids, split.labels))

    def test_official_protocol(self, imdb_reviews):
        imdb = split_imdb(imdb_reviews, "official", seed=1337)
        assert (len(imdb.train), len(imdb.validation), len(imdb.test)) == (20_000, 5_000, 25_000)
        assert set(imdb.train.ids).isdisjoint(imdb.validation.ids)
        assert {i.split("/")[0] for i in imdb.train.ids + imdb.validation.ids} == {"train"}

    def test_book_protocol_is_the_tutorials_split(self):
        # Raschka et al. ch. 16 prints the vocabulary of its 20,000 training reviews, read with tfds'
        # Tokenizer: 87,007 words, 58,063 in each review's last 100 tokens. Only its exact split gives both.
        require(IMDB_ARCHIVE.name)
        imdb = split_imdb(read_imdb(find_dataset_file(IMDB_ARCHIVE, download=False), keep_markup=True), "book")
        assert (len(imdb.train), len(imdb.validation), len(imdb.test)) == (20_000, 5_000, 25_000)
        assert len(set(imdb.train.ids + imdb.validation.ids + imdb.test.ids)) == 50_000
        assert imdb.test.texts[0].startswith("Alright, let me break it down for ya") and imdb.test.labels[0] == 1
        assert (sum(imdb.test.labels), sum(imdb.train.labels)) == (12_459, 9_978)
        tfds_tokenizer = WordTokenizer(pattern=r"\w+", normalize=None)
        whole, last_100 = Counter(), Counter()
        for text in imdb.train.texts:
            tokens = tfds_tokenizer(text)
            whole.update(tokens)
            last_100.update(tokens[-100:])
        assert (len(whole), len(last_100)) == (87_007, 58_063)
        assert whole["br"] > 0 and any("<br />" in text for text in imdb.train.texts)  # kept, as in movie_data.csv

    def test_tutorial_pipeline_last_100_tokens(self, imdb_reviews):
        train = imdb_reviews.train.subset(range(0, 25_000, 25), "sample")
        tokenizer = WordTokenizer(lowercase=True)
        vocab = Vocabulary.build(train.texts, max_size=5_000, tokenizer=tokenizer)
        encoded = [truncate(ids, keep_last=100) for ids in vocab.encode_batch(train.texts)]
        assert len(vocab) == 5_002 and vocab.tokens[1:4] == ["the", "a", "and"]
        counts = Counter(token for text in train.texts for token in tokenizer(text))
        rare = sum(c for _, c in counts.most_common()[5_000:])
        assert (vocab.oov.tokens, vocab.oov.unknown) == (sum(counts.values()), rare)
        assert max(map(len, encoded)) == 100


def test_nsmc_rows_less_the_empty_ones():
    require("nsmc/ratings_train.txt")
    require("nsmc/ratings_test.txt")
    train, test = load_nsmc("train", download=False), load_nsmc("test", download=False)
    assert (len(train), train.skipped_empty) == (150_000 - 5, 5)
    assert (len(test), test.skipped_empty) == (50_000 - 3, 3)
    assert train.texts[0] == "아 더빙.. 진짜 짜증나네요 목소리" and train.labels[0] == 0
    assert set(train.labels) == set(test.labels) == {0, 1}


def test_kor_eng_pairs():
    require("kor-eng/kor.txt")
    pairs = load_parallel("kor", download=False)
    assert len(pairs) == 5_749
    assert pairs.pairs()[:2] == [("Go.", "가."), ("Hi.", "안녕.")]
    assert all(a.startswith("CC-BY 2.0 (France) Attribution: tatoeba.org") for a in pairs.attributions)
    assert load_parallel("kor", reverse=True, download=False).sources[0] == "가."


def test_fra_eng_pairs():
    require("fra-eng/fra.txt")
    pairs = load_parallel("fra", download=False)
    assert len(pairs) == 167_130 and pairs.attributions is None
    assert pairs.pairs()[0] == ("Go.", "Va !")


def test_mysterious_island_as_in_the_tutorial():
    require("1268-0.txt")
    text = load_gutenberg(1268, download=False).text
    assert (len(text), len(set(text))) == (1_112_350, 80)
    assert text.startswith("THE MYSTERIOUS ISLAND") and "\ufeff" not in text and "\r" not in text
    assert "End of the Project Gutenberg" not in text
    vocab = Vocabulary.build([text], tokenizer=CharTokenizer())
    assert len(vocab) == 82  # 80 characters + padding + unknown
    windows = LanguageModelWindows(torch.tensor(vocab.encode(text)), seq_len=40)
    assert len(windows) == 1_112_350 // 41
    assert vocab.decode_text(windows[0][0]) == text[:40]


def test_koconovel_plain_corpus():
    require("koconovel/koconovel_50novels.txt")
    corpus = load_text_corpus(require("koconovel"))
    # The README counts 707,152 raw characters, 1,519 distinct: 134 of them are
    # the "\r" of CRLF line ends, which text mode turns into "\n".
    assert (len(corpus.text), len(set(corpus.text))) == (707_152 - 134, 1_519 - 1)
