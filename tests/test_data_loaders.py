"""Dataset loaders on small files the tests make, in each dataset's published format."""
import io
import tarfile
from pathlib import Path

import pytest

from seqlab.data.datasets import (MalformedDataError, TextDecodeError, decode_text,
                                  load_gutenberg, load_imdb, load_nsmc, load_parallel,
                                  load_text_corpus, load_text_label, read_imdb, split_imdb,
                                  strip_gutenberg_boilerplate)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# ---------------------------------------------------------------- IMDb

def imdb_files(bad_bytes: bool = False) -> dict[str, bytes]:
    """aclImdb/ layout: 4 reviews per labeled folder, 3 unlabeled."""
    files = {"aclImdb/README": b"readme", "aclImdb/imdb.vocab": b"the\nfilm\n",
             "aclImdb/train/urls_pos.txt": b"http://..."}
    for part in ("train", "test"):
        for label in ("pos", "neg"):
            for review_id in (10, 2, 7, 0):  # unsorted on purpose
                text = f"{part} {label} {review_id}<br />second line<br/>end"
                files[f"aclImdb/{part}/{label}/{review_id}_{8 if label == 'pos' else 3}.txt"] = text.encode()
    for review_id in range(3):
        files[f"aclImdb/train/unsup/{review_id}_0.txt"] = f"unlabeled {review_id}".encode()
    if bad_bytes:
        files["aclImdb/test/neg/7_3.txt"] = b"caf\xe9 ok"
    return files


@pytest.fixture(scope="module")
def imdb_archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in imdb_files().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


class TestImdb:
    def test_reads_the_archive_in_published_order(self, imdb_archive):
        reviews = read_imdb(imdb_archive, unlabeled=True)
        assert len(reviews.train) == len(reviews.test) == 8
        assert reviews.train.labels == [0] * 4 + [1] * 4  # neg then pos, by review id
        assert reviews.train.texts[0] == "train neg 0 second line end"
        assert reviews.train.ids[:2] == ["train/neg/0_3.txt", "train/neg/2_3.txt"]
        assert reviews.train.label_names == {0: "neg", 1: "pos"}
        assert reviews.unlabeled == ["unlabeled 0", "unlabeled 1", "unlabeled 2"]
        assert read_imdb(imdb_archive).unlabeled is None

    def test_extracted_folder_reads_the_same(self, imdb_archive, tmp_path):
        for name, data in imdb_files().items():
            write(tmp_path / name, data)
        from_archive = read_imdb(imdb_archive, unlabeled=True)
        for path in (tmp_path, tmp_path / "aclImdb"):
            from_folder = read_imdb(path, unlabeled=True)
            assert from_folder.train.texts == from_archive.train.texts
            assert from_folder.test.ids == from_archive.test.ids
            assert from_folder.unlabeled == from_archive.unlabeled

    def test_official_split_is_seeded(self, imdb_archive):
        imdb = load_imdb(path=imdb_archive, seed=1, validation_size=3)
        assert (len(imdb.train), len(imdb.validation), len(imdb.test)) == (5, 3, 8)
        assert sorted(imdb.train.texts + imdb.validation.texts) == sorted(read_imdb(imdb_archive).train.texts)
        assert all(t.startswith("test") for t in imdb.test.texts)
        again = load_imdb(path=imdb_archive, seed=1, validation_size=3)
        assert again.train.texts == imdb.train.texts
        others = [load_imdb(path=imdb_archive, seed=s, validation_size=3).train.texts for s in range(2, 6)]
        assert any(o != imdb.train.texts for o in others)
        for split in (imdb.train, imdb.validation, imdb.test):
            assert all(("pos" in t) == (label == 1) for t, label in zip(split.texts, split.labels))

    def test_book_split_is_the_tutorials_order(self, imdb_archive):
        # movie_data.csv lists test/pos, test/neg, train/pos, train/neg, files sorted as strings (0, 10, 2, 7),
        # permuted by np.random.seed(0): [1, 6, 8, 9, 13, 4, 2, 14, 10, 7, 15, 11, 3, 0, 5, 12]. TensorFlow
        # 2.21 shuffles 16 rows after tf.random.set_seed(1) as [2, 10, 13, 6, 1, 14, 12, 5, 8, 3, 9, 0, 7, 15, 4, 11].
        imdb = split_imdb(read_imdb(imdb_archive), "book", validation_size=2)
        assert imdb.test.ids == ["train/pos/0_8.txt", "train/neg/7_3.txt", "test/pos/0_8.txt", "test/pos/2_8.txt",
                                 "test/neg/2_3.txt", "test/neg/10_3.txt", "test/pos/7_8.txt", "test/neg/0_3.txt"]
        assert imdb.train.ids == ["train/pos/2_8.txt", "train/pos/10_8.txt", "test/neg/7_3.txt",
                                  "test/pos/10_8.txt", "train/neg/2_3.txt", "train/neg/0_3.txt"]
        assert imdb.validation.ids == ["train/neg/10_3.txt", "train/pos/7_8.txt"]
        assert imdb.test.labels == [1, 0, 1, 1, 0, 0, 1, 0]
        other = split_imdb(read_imdb(imdb_archive), "book", seed=2, validation_size=2)
        assert other.test.ids != imdb.test.ids  # seed: the tutorial's tf.random.set_seed(1) replaced
        assert sorted(other.test.ids + other.train.ids + other.validation.ids) == sorted(
            imdb.test.ids + imdb.train.ids + imdb.validation.ids)

    def test_book_split_keeps_the_markup_as_the_tutorial_reads_it(self, imdb_archive):
        book = load_imdb(path=imdb_archive, split="book", validation_size=2)
        assert all("<br />second line<br/>end" in text for text in book.test.texts)
        official = load_imdb(path=imdb_archive, validation_size=2)
        assert all("<br" not in text for text in official.test.texts)
        assert "<br" not in load_imdb(path=imdb_archive, split="book", validation_size=2,
                                        keep_markup=False).test.texts[0]

    def test_validation_size_zero_gives_the_full_published_train(self, imdb_archive):
        imdb = load_imdb(path=imdb_archive, validation_size=0)
        assert (len(imdb.train), len(imdb.validation)) == (8, 0)

    def test_bad_arguments(self, imdb_archive):
        with pytest.raises(ValueError, match="unknown IMDb split 'tutorial'"):
            load_imdb(path=imdb_archive, split="tutorial")
        with pytest.raises(ValueError, match="validation_size=8 leaves no training reviews"):
            load_imdb(path=imdb_archive, validation_size=8)

    def test_undecodable_review_names_member_and_offset(self, tmp_path):
        for name, data in imdb_files(bad_bytes=True).items():
            write(tmp_path / name, data)
        with pytest.raises(TextDecodeError, match=r"test/neg/7_3.txt: byte offset 3: bytes b'\\xe9'"):
            read_imdb(tmp_path)
        reviews = read_imdb(tmp_path, errors="replace")
        assert (reviews.test.replaced, reviews.train.replaced) == (1, 0)
        assert "caf\ufffd ok" in reviews.test.texts

    def test_incomplete_archive(self, tmp_path):
        write(tmp_path / "aclImdb/train/pos/1_9.txt", "good")
        with pytest.raises(ValueError, match="no reviews in aclImdb/train/neg/"):
            read_imdb(tmp_path)
        with pytest.raises(FileNotFoundError, match="neither the extracted aclImdb/ folder"):
            read_imdb(tmp_path / "aclImdb" / "train")


# ---------------------------------------------------------------- Gutenberg

BOOK = ("\ufeffThe Project Gutenberg EBook of Tiny Tale\r\n\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK TINY TALE ***\r\n\r\n\r\n"
        "Produced by someone\r\n\r\nTINY TALE\r\n\r\nOnce upon a time.\r\nThe end.\r\n\r\n"
        "End of the Project Gutenberg EBook of Tiny Tale\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK TINY TALE ***\r\nlicense text\r\n")


class TestGutenberg:
    def test_strips_bom_header_footer_and_crlf(self, tmp_path):
        corpus = load_gutenberg(book=None, path=write(tmp_path / "tiny.txt", BOOK))
        assert corpus.text == "Produced by someone\n\nTINY TALE\n\nOnce upon a time.\nThe end.\n\n"

    def test_start_at_is_the_first_occurrence_in_the_file(self, tmp_path):
        path = write(tmp_path / "tiny.txt", BOOK)
        assert load_gutenberg(book=None, path=path, start_at="Once").text == "Once upon a time.\nThe end.\n\n"
        # As the tutorial's text.find(title): the first one is in the START line.
        assert load_gutenberg(book=None, path=path, start_at="TINY TALE").text.startswith("TINY TALE ***\n")

    def test_new_style_markers(self):
        text = ("*** START OF THE PROJECT GUTENBERG EBOOK X ***\nbody\n"
                "*** END OF THE PROJECT GUTENBERG EBOOK X ***\n")
        assert strip_gutenberg_boilerplate(text) == "body\n"

    def test_not_a_gutenberg_text(self, tmp_path):
        with pytest.raises(ValueError, match="not a Project Gutenberg text; .*load_text_corpus"):
            load_gutenberg(book=None, path=write(tmp_path / "plain.txt", "just text"))
        with pytest.raises(ValueError, match="never contains start_at='Chapter 99'"):
            load_gutenberg(book=None, path=write(tmp_path / "tiny.txt", BOOK), start_at="Chapter 99")

    def test_unknown_book_says_where_to_get_it(self):
        with pytest.raises(ValueError, match=r"book 84 .*gutenberg.org/ebooks/84 and pass book=None, path="):
            load_gutenberg(84)


# ---------------------------------------------------------------- NSMC and text/label files

NSMC = ('id\tdocument\tlabel\n1\t아 더빙.. 진짜 짜증나네요\t0\n2\t\t1\n'
        '3\t"최고" 라고 했지만 "별로\t0\n4\t굳 ㅋ\t1\n')


class TestNsmc:
    def test_reads_tsv_with_quotes_off_and_skips_empty(self, tmp_path):
        split = load_nsmc("test", path=write(tmp_path / "ratings_test.txt", NSMC))
        assert split.texts == ["아 더빙.. 진짜 짜증나네요", '"최고" 라고 했지만 "별로', "굳 ㅋ"]
        assert split.labels == [0, 0, 1] and split.ids == ["1", "3", "4"]
        assert split.skipped_empty == 1
        assert split.summary().startswith("nsmc-test: 3 texts, labels {0: 2, 1: 1}")

    def test_folder_path_finds_the_split_file(self, tmp_path):
        write(tmp_path / "ratings_train.txt", NSMC)
        assert len(load_nsmc("train", path=tmp_path)) == 3

    def test_unexpected_label_lists_lines(self, tmp_path):
        bad = write(tmp_path / "r.txt", NSMC + "5\tok\t2\n6\tmeh\tneutral\n")
        with pytest.raises(MalformedDataError, match=r"2 rows with a label other than \['0', '1'\] "
                                                     r"\(found \['2', 'neutral'\]\), at line 6, 7"):
            load_nsmc(path=bad)

    def test_malformed_row_lists_lines(self, tmp_path):
        bad = write(tmp_path / "r.txt", NSMC + "5\tno label\n6\ta\tb\t1\n")
        with pytest.raises(MalformedDataError, match="2 rows without 3 fields, at line 6, 7"):
            load_nsmc(path=bad)

    def test_unknown_split(self):
        with pytest.raises(ValueError, match="unknown NSMC split 'dev'"):
            load_nsmc("dev")


class TestTextLabel:
    def test_csv_with_named_columns_quotes_and_string_labels(self, tmp_path):
        path = write(tmp_path / "reviews.csv",
                     'sentiment,review\npos,"Great, really\ngreat"\nneg,Bad\npos,"Said ""wow"""\n')
        split = load_text_label(path, text_column="review", label_column="sentiment",
                                labels=["neg", "pos"])
        assert split.texts == ["Great, really\ngreat", "Bad", 'Said "wow"']
        assert split.labels == [1, 0, 1] and split.label_names == {0: "neg", 1: "pos"}
        assert split.name == "reviews"

    def test_inferred_labels(self, tmp_path):
        numbers = load_text_label(write(tmp_path / "a.tsv", "text\tlabel\nx\t3\ny\t-1\n"))
        assert numbers.labels == [3, -1]
        names = load_text_label(write(tmp_path / "b.tsv", "text\tlabel\nx\tspam\ny\tham\n"))
        assert names.labels == [1, 0] and names.label_names == {0: "ham", 1: "spam"}

    def test_headerless_by_position(self, tmp_path):
        split = load_text_label(write(tmp_path / "c.tsv", "1\thello\n0\tbye\n"), text_column=1,
                                label_column=0, header=False)
        assert split.texts == ["hello", "bye"] and split.labels == [1, 0]

    def test_malformed_rows_report_where_the_row_starts(self, tmp_path):
        path = write(tmp_path / "d.csv", 'text,label\n"multi\nline",1\nonly one field\n\nok,0\nx\n\n')
        with pytest.raises(MalformedDataError, match="d.csv: 2 rows without 2 fields, at line 4, 7;"):
            load_text_label(path)

    def test_broken_quoting_names_the_line(self, tmp_path):
        path = write(tmp_path / "e.csv", 'text,label\nok,1\n"bad"x,0\n')
        with pytest.raises(MalformedDataError, match="e.csv: line 3: .*quoting=False"):
            load_text_label(path)

    def test_column_errors(self, tmp_path):
        path = write(tmp_path / "f.csv", "body,label\nx,1\n")
        with pytest.raises(ValueError, match=r"no column 'text'; its columns are \['body', 'label'\]"):
            load_text_label(path)
        with pytest.raises(ValueError, match="column 5 does not exist: .* has 2 columns"):
            load_text_label(path, text_column=5)
        with pytest.raises(ValueError, match="read without a header"):
            load_text_label(path, header=False)

    def test_empty_file_and_unknown_suffix(self, tmp_path):
        with pytest.raises(ValueError, match="has no data rows"):
            load_text_label(write(tmp_path / "g.csv", "text,label\n"))
        with pytest.raises(ValueError, match="has no data rows"):
            load_text_label(write(tmp_path / "h.csv", ""))
        with pytest.raises(ValueError, match="cannot tell the delimiter of data.json"):
            load_text_label(write(tmp_path / "data.json", "{}"))


# ---------------------------------------------------------------- sentence pairs

PAIRS = ("Go.\t가.\tCC-BY 2.0 (France) #1\n"
         "I am very happy today.\t나는 오늘 정말 행복해.\tCC-BY 2.0 (France) #2\n"
         "\"Hi\" he said.\t\"안녕\" 그가 말했다.\tCC-BY 2.0 (France) #3\n"
         "Empty.\t \tCC-BY 2.0 (France) #4\n")


class TestParallel:
    def test_pairs_with_attribution_as_metadata(self, tmp_path):
        corpus = load_parallel("kor", path=write(tmp_path / "kor.txt", PAIRS))
        assert corpus.pairs()[0] == ("Go.", "가.")
        assert corpus.sources[2] == '"Hi" he said.'
        assert corpus.attributions[1] == "CC-BY 2.0 (France) #2"
        assert not any("CC-BY" in text for text in corpus.sources + corpus.targets)
        assert (corpus.source_language, corpus.target_language) == ("en", "ko")
        assert corpus.skipped_empty == 1 and len(corpus) == 3

    def test_reverse_and_length_filter(self, tmp_path):
        corpus = load_parallel("kor", path=write(tmp_path / "kor.txt", PAIRS), reverse=True, max_length=3)
        assert corpus.pairs() == [("가.", "Go."), ('"안녕" 그가 말했다.', '"Hi" he said.')]
        assert (corpus.source_language, corpus.skipped_length) == ("ko", 1)
        assert len(load_parallel("kor", path=tmp_path / "kor.txt", min_length=2)) == 2

    def test_two_column_file_of_another_language(self, tmp_path):
        corpus = load_parallel("deu", path=write(tmp_path / "deu.txt", "Hi.\tHallo!\n"))
        assert corpus.pairs() == [("Hi.", "Hallo!")] and corpus.attributions is None
        assert corpus.target_language == "deu"

    def test_malformed_lines_and_unknown_pair(self, tmp_path):
        with pytest.raises(MalformedDataError, match="1 rows without 2 or 3 fields, at line 2"):
            load_parallel("kor", path=write(tmp_path / "k.txt", "Go.\t가.\nno tab here\n"))
        with pytest.raises(ValueError, match="unknown sentence-pair file 'deu'.*pass path="):
            load_parallel("deu")


# ---------------------------------------------------------------- plain text and decoding

class TestTextCorpus:
    def test_folder_sorted_recursive_empty_files_skipped(self, tmp_path):
        write(tmp_path / "b.txt", "second")
        write(tmp_path / "sub" / "a.txt", "\ufeffthird\r\nline")
        write(tmp_path / "a.txt", "first")
        write(tmp_path / "empty.txt", "  \n")
        write(tmp_path / "notes.md", "ignored")
        corpus = load_text_corpus(tmp_path)
        assert corpus.documents == ["first", "second", "third\nline"]
        assert corpus.text == "first\nsecond\nthird\nline"
        assert corpus.summary() == "3 documents, 23 characters, 13 distinct"
        assert len(load_text_corpus(tmp_path, pattern="*.md").documents) == 1

    def test_empty_corpus_and_missing_files(self, tmp_path):
        write(tmp_path / "empty.txt", "")
        with pytest.raises(ValueError, match="empty corpus: the 1 file"):
            load_text_corpus(tmp_path)
        with pytest.raises(ValueError, match=r"no files matching '\*.csv'"):
            load_text_corpus(tmp_path, pattern="*.csv")
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_text_corpus(tmp_path / "nope")

    def test_undecodable_bytes_name_file_and_offset(self, tmp_path):
        path = write(tmp_path / "bad.txt", "한국".encode() + b"\xff\xfe ok")
        expected = r"bad.txt: byte offset 6: bytes b'\\xff' .*errors='replace'"
        with pytest.raises(TextDecodeError, match=expected):
            load_text_corpus(path)

    def test_replace_counts_only_real_replacements(self):
        data = "genuine \ufffd ".encode() + b"\xff x \xc3"  # one real U+FFFD, two bad runs
        decoded = decode_text(data, "memory", errors="replace")
        assert decoded.text == "genuine \ufffd \ufffd x \ufffd"
        assert decoded.replaced == 2

    def test_errors_option_validated(self):
        with pytest.raises(ValueError, match="errors must be 'strict' or 'replace'"):
            decode_text(b"x", "memory", errors="ignore")
