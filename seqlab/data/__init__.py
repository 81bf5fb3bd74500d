"""Text data pipeline: tokenize, count a vocabulary, encode, batch, load datasets.

    from seqlab.data import WordTokenizer, Vocabulary, SequenceDataset, SequenceCollate
    from seqlab.data.datasets import load_imdb

    imdb = load_imdb(split="book")
    tokenizer = WordTokenizer(lowercase=True)
    vocab = Vocabulary.build(imdb.train.texts, max_size=20_000, tokenizer=tokenizer)
    train = SequenceDataset(vocab.encode_batch(imdb.train.texts), imdb.train.labels, keep_last=100)
"""
from seqlab.data.batching import (BucketBatchSampler, LanguageModelWindows, PaddedBatch,
                                  SequenceCollate, SequenceDataset, pad_batch, padding_fraction,
                                  truncate)
from seqlab.data.fetch import (ChecksumError, DatasetFile, DatasetNotFoundError, cache_dir,
                               download, find_dataset_file)
from seqlab.data.korean import (JamoTokenizer, KiwiTokenizer, MissingDependencyError, compose_jamo,
                                decompose_jamo)
from seqlab.data.subwords import SubwordTokenizer
from seqlab.data.tokenizers import CharTokenizer, Tokenizer, WordTokenizer, tokenizer_from_config
from seqlab.data.vocabulary import OutOfVocabularyCount, Vocabulary

__all__ = [
    "BucketBatchSampler", "CharTokenizer", "ChecksumError", "DatasetFile", "DatasetNotFoundError",
    "JamoTokenizer", "KiwiTokenizer", "LanguageModelWindows", "MissingDependencyError",
    "OutOfVocabularyCount", "PaddedBatch", "SequenceCollate", "SequenceDataset", "SubwordTokenizer", "Tokenizer",
    "Vocabulary", "WordTokenizer", "cache_dir", "compose_jamo", "decompose_jamo", "download",
    "find_dataset_file", "pad_batch", "padding_fraction", "tokenizer_from_config", "truncate",
]
