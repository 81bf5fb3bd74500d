"""Loaders for the real datasets, each parsing the format as published.

Every loader finds its files with `seqlab.data.fetch.find_dataset_file`: an
explicit `path=`, else `$SEQLAB_DATA_DIR`, else the user cache, else a verified
download.
"""
from seqlab.data.datasets.conllu_file import read_conllu
from seqlab.data.datasets.gutenberg import load_gutenberg, strip_gutenberg_boilerplate
from seqlab.data.datasets.imdb import ImdbReviews, ImdbSplits, load_imdb, read_imdb, split_imdb
from seqlab.data.datasets.klue_ner import load_klue_ner
from seqlab.data.datasets.koconovel import koconovel_file, load_koconovel
from seqlab.data.datasets.nsmc import load_nsmc
from seqlab.data.datasets.parallel import ParallelCorpus, load_parallel
from seqlab.data.datasets.tagged import TaggedSentences, read_tagged_tsv
from seqlab.data.datasets.text_corpus import TextCorpus, TextDecodeError, decode_text, load_text_corpus
from seqlab.data.datasets.text_label import MalformedDataError, TextLabelSplit, load_text_label
from seqlab.data.datasets.ud_ewt import load_ud_ewt

__all__ = [
    "koconovel_file", "load_koconovel",
    "ImdbReviews", "ImdbSplits", "MalformedDataError", "ParallelCorpus", "TextCorpus",
    "TextDecodeError", "TextLabelSplit", "decode_text", "load_gutenberg", "load_imdb",
    "load_nsmc", "load_parallel", "load_text_corpus", "load_text_label", "read_imdb",
    "split_imdb", "strip_gutenberg_boilerplate",
    "TaggedSentences", "load_klue_ner", "load_ud_ewt", "read_conllu", "read_tagged_tsv",
]
