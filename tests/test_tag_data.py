"""Tagging data: CoNLL-U as UD reads it, token<TAB>tag files, KLUE's seeded split, and their bad inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqlab.apps.tag.data import load_tagging_data, tokens_of
from seqlab.apps.tag.encoding import MAX_CHARS, TagEncoder, spelling, split_text
from seqlab.data.datasets.conllu_file import read_conllu
from seqlab.data.datasets.tagged import TaggedSentences, is_bio_tagset, read_tagged_tsv
from seqlab.data.datasets.text_corpus import TextDecodeError
from seqlab.data.datasets.text_label import MalformedDataError

DATA_DIR = Path(os.environ.get("SEQLAB_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))

CONLLU = """# newdoc id = d1
# sent_id = s1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
4.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t4:conj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = s2
1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_

"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_conllu_skips_multiword_ranges_and_empty_nodes_as_ud_does(tmp_path):
    data = read_conllu(write(tmp_path, "a.conllu", CONLLU))
    assert data.sentences == [["I", "do", "n't", "know", "."], ["Yes"]]
    assert data.tags == [["PRON", "AUX", "PART", "VERB", "PUNCT"], ["INTJ"]]
    assert data.ids == ["s1", "s2"]
    assert read_conllu(tmp_path / "a.conllu", tagset="xpos").tags[0] == ["PRP", "VBP", "RB", "VB", "."]


def test_conllu_word_without_its_tag_column_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, "short.conllu", "# sent_id = x7\n1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n2\tran\trun\n\n")
    with pytest.raises(MalformedDataError, match=r"sentence x7, word 2 \('ran'\) has no UPOS column"):
        read_conllu(path)
    no_xpos = write(tmp_path, "no-xpos.conllu", "1\tI\tI\tPRON\t_\t_\t0\troot\t_\t_\n\n")
    with pytest.raises(MalformedDataError, match=r"has no XPOS tag \('_'\): .*\(--tagset upos\)"):
        read_conllu(no_xpos, tagset="xpos")
    with pytest.raises(ValueError, match="tagset must be one of"):
        read_conllu(path, tagset="deprel")


def test_tsv_reads_space_tokens_comments_and_sentences(tmp_path):
    path = write(tmp_path, "ner.tsv", "## id\t<박:PS>씨\n박\tB-PS\n씨\tO\n \tO\n\n\n## two\n서\tB-LC\n울\tI-LC\n")
    data = read_tagged_tsv(path)
    assert data.sentences == [["박", "씨", " "], ["서", "울"]]
    assert data.tags == [["B-PS", "O", "O"], ["B-LC", "I-LC"]]
    assert tokens_of(data) == "characters" and is_bio_tagset(data.tag_counts())
    assert read_tagged_tsv(write(tmp_path, "hash.tsv", "##\tSYM\nx\tX\n")).sentences == [["##", "x"]]


@pytest.mark.parametrize("content, message", [
    ("I\tPRON\nran\n", r"bad.tsv:2: no tab in 'ran'"),
    ("I\tPRON\n\t\n", None),            # a line of tabs only ends a sentence
    ("I\t \n", r"bad.tsv:1: empty tag"),
    ("", r"holds no tagged sentence"),
    ("## only a comment\n\n", r"holds no tagged sentence"),
])
def test_tsv_bad_lines_are_errors_with_file_and_line(tmp_path, content, message):
    path = write(tmp_path, "bad.tsv", content)
    if message is None:
        assert read_tagged_tsv(path).sentences == [["I"]]
        return
    with pytest.raises(MalformedDataError, match=message):
        read_tagged_tsv(path)


def test_non_utf8_and_missing_files_are_clear_errors(tmp_path):
    path = write(tmp_path, "latin1.tsv", "café\tNOUN\n".encode("latin-1"))
    with pytest.raises(TextDecodeError, match=r"latin1.tsv: byte offset 3: .* not valid utf-8"):
        read_tagged_tsv(path)
    assert read_tagged_tsv(path, errors="replace").sentences == [["caf\ufffd"]]
    with pytest.raises(FileNotFoundError, match="is not a file"):
        read_conllu(tmp_path / "missing.conllu")
    with pytest.raises(MalformedDataError, match="holds no CoNLL-U sentence"):
        read_conllu(write(tmp_path, "empty.conllu", "# just a comment\n\n"))


def test_tagged_sentences_refuse_mismatched_lengths():
    with pytest.raises(ValueError, match="sentence 1 has 2 tokens but 1 tags"):
        TaggedSentences("x", [["a", "b"]], [["A"]])


def test_user_file_splits_80_10_10_seeded(tmp_path):
    lines = "".join(f"w{i}\tT{i % 3}\n\n" for i in range(50))
    path = write(tmp_path, "mine.tsv", lines)
    data = load_tagging_data(f"tsv:{path}", split_seed=3)
    assert (len(data.train), len(data.dev), len(data.test)) == (40, 5, 5)
    assert data.tokens == "words" and len(data.spec["sha256"]) == 64
    again = load_tagging_data(f"tsv:{path}", split_seed=3)
    assert again.test.sentences == data.test.sentences
    other = load_tagging_data(f"tsv:{path}", split_seed=4)
    assert other.test.sentences != data.test.sentences
    names = {tuple(s) for part in (data.train, data.dev, data.test) for s in part.sentences}
    assert len(names) == 50  # the three parts are disjoint and cover the file
    with pytest.raises(ValueError, match="unknown dataset 'conll'"):
        load_tagging_data("conll")
    for count in (3, 4, 5, 9):  # every part keeps a sentence
        few = write(tmp_path, f"few{count}.tsv", "".join(f"w{i}\tT\n\n" for i in range(count)))
        parts = load_tagging_data(f"tsv:{few}")
        assert (len(parts.train), len(parts.dev), len(parts.test)) == (count - 2, 1, 1)
    with pytest.raises(FileNotFoundError, match="is not a file"):
        load_tagging_data(f"tsv:{tmp_path / 'missing.tsv'}")


def test_split_text_and_spelling():
    assert split_text("I don't like U.S. e-mail, ok?", "words") == \
        ["I", "do", "n't", "like", "U.S.", "e-mail", ",", "ok", "?"]
    assert split_text("I'm sure it's John's, we've seen.", "words") == \
        ["I", "'m", "sure", "it", "'s", "John", "'s", ",", "we", "'ve", "seen", "."]
    assert split_text("박씨 딸", "characters") == ["박", "씨", " ", "딸"]
    assert spelling("값") == ["\u1100", "\u1161", "\u11b9"]  # a syllable's jamo (NFD)
    long = "x" * 10 + "y" * 30
    assert len(spelling(long)) == MAX_CHARS and spelling(long)[0] == "x" and spelling(long)[-1] == "y"


def test_encoder_ids_padding_and_unknown_tags():
    data = TaggedSentences("t", [["The", "cat"], ["A", "dog", "ran"]], [["DET", "NOUN"], ["DET", "NOUN", "VERB"]])
    encoder = TagEncoder.build(data)
    encoded = encoder.encode(data.sentences, data.tags)
    (words, chars), tags = encoder.collate(encoded)
    assert words.shape == (2, 3) and chars.shape == (2, 3, 3) and tags.shape == (2, 3)
    assert words[0, 2] == 0 and tags[0, 2] == 0 and (chars[0, 2] == 0).all()
    assert encoder.tags.decode(tags[1]) == ["DET", "NOUN", "VERB"]
    assert encoder.words.decode(words[0]) == ["the", "cat"]                   # lowercased for the embedding
    assert encoder.chars.decode(chars[0, 0]) == ["T", "h", "e"]               # the case stays in the spelling
    unknown = encoder.encode([["Zebra"]])[0]
    assert unknown.words == [encoder.words.unknown_index]
    iob1 = TaggedSentences("iob1.tsv", [["New", "York"]], [["I-LC", "I-LC"]])
    with pytest.raises(ValueError, match=r"iob1.tsv: sentence 1, token 1 \('New'\) is tagged I-LC after the start"):
        TagEncoder.build(iob1)
    with pytest.raises(ValueError, match=r"tags the model was not trained on: \['ADJ'\]"):
        encoder.encode([["big"]], [["ADJ"]], "dev.tsv")
    assert TagEncoder.from_config(encoder.to_config()).to_config() == encoder.to_config()


@pytest.mark.skipif(not (DATA_DIR / "ud-english-ewt").is_dir() or not (DATA_DIR / "klue-ner").is_dir(),
                    reason="UD English EWT and KLUE NER are in ../shared/datasets")
def test_real_datasets_have_their_published_sizes(monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(DATA_DIR))
    ewt = load_tagging_data("ud-ewt")
    assert (len(ewt.train), len(ewt.dev), len(ewt.test)) == (12_544, 2_001, 2_077)
    assert len(ewt.train.tag_counts()) == 17 and ewt.tokens == "words"
    klue = load_tagging_data("klue-ner")
    assert (len(klue.train), len(klue.dev), len(klue.test)) == (4000, 500, 500) and klue.tokens == "characters"
    assert {tag[2:] for tag in klue.train.tag_counts() if tag != "O"} == {"PS", "LC", "OG", "DT", "TI", "QT"}
    assert "".join(klue.test.sentences[0]).startswith("경찰은 또 성매매")


def test_a_conllu_dataset_splits_and_reads_its_tagset(tmp_path):
    sentences = "".join(f"# sent_id = s{i}\n1\tword{i}\tw\tNOUN\tNN\t_\t0\troot\t_\t_\n\n" for i in range(10))
    path = write(tmp_path, "mine.conllu", sentences)
    data = load_tagging_data(f"conll:{path}", tagset="xpos")
    assert (len(data.train), len(data.dev), len(data.test)) == (8, 1, 1)
    assert data.train.tag_counts() == {"NN": 8} and data.tokens == "words"
    assert data.spec["dataset"] == f"conll:{path.resolve()}"
