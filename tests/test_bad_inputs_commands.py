"""Bad inputs to the `seqlab` commands, tried as a new user would (issue 22's matrix, command-line part).

Each case is a command line, its exit status (1 runtime error, 2 usage) and
the clear error it must print. A refused command must also leave every file
where it was: nothing written, nothing moved, nothing deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from seqlab.cli import main
from seqlab.commandline import json_line
from seqlab.saving import CONFIG_FILE, WEIGHTS_FILE

POSITIVE, NEGATIVE, FILLER = ["good", "great", "fine"], ["bad", "awful", "dull"], "the a film plot was".split()
SYMBOLS = "a b c d e f g".split()

SENTIMENT = ["sentiment", "train", "--dataset", "csv:{work}/reviews.csv", "--embedding-dim", "8", "--units", "8",
             "--dense-units", "0", "--epochs", "2", "--verbose", "0", "--threads", "1"]
CHARLM = ["charlm", "train", "--text", "{work}/island.txt", "--units", "16", "--embedding-dim", "8", "--seq-len",
          "20", "--batch-size", "16", "--threads", "1", "--verbose", "0", "--epochs", "2"]
TRANSLATE = ["translate", "train", "--pairs", "tsv:{work}/pairs.tsv", "--epochs", "2", "--units", "8",
             "--embedding-dim", "8", "--test-sources", "20", "--threads", "1"]
EMBEDDINGS = ["embeddings", "train", "--corpus", "text:{work}/island.txt", "--min-count", "1", "--dim", "8",
              "--epochs", "2", "--verbose", "0", "--threads", "1"]
TAG = ["tag", "train", "--dataset", "tsv:{work}/entities.tsv", "--units", "8", "--word-dim", "8", "--char-units",
       "8", "--char-dim", "8", "--layers", "1", "--epochs", "2", "--patience", "100", "--verbose", "0", "--threads",
       "1"]
TRAIN = {"sentiment": SENTIMENT, "charlm": CHARLM, "translate": TRANSLATE, "embeddings": EMBEDDINGS, "tag": TAG}
RESULT_FILES = {"embeddings": ("vectors", "vectors.safetensors")}  # the others: model/model.safetensors
A_SETTING = {"sentiment": "--units", "charlm": "--units", "translate": "--units", "embeddings": "--dim",
             "tag": "--units"}


def write_data(work: Path) -> None:
    rng = random.Random(0)
    rows = ["text,label"]
    for i in range(120):
        label = ("neg", "pos")[i % 2]
        words = rng.choices(FILLER, k=rng.randint(2, 6)) + rng.choices(POSITIVE if label == "pos" else NEGATIVE, k=2)
        rows.append(f"{' '.join(words)},{label}")
    (work / "reviews.csv").write_text("\n".join(rows) + "\n")
    (work / "island.txt").write_text("The engineer and the sailor spoke of the island, while Pencroft and "
                                     "Herbert explored the shore. " * 40)
    pairs = [[rng.choice(SYMBOLS) for _ in range(rng.randint(2, 4))] for _ in range(300)]
    (work / "pairs.tsv").write_text("".join(f"{' '.join(w)}\t{' '.join(reversed(w))}\n" for w in pairs))
    (work / "latin1.txt").write_bytes("Pencroft's café. ".encode("latin-1") * 50)
    (work / "latin1.tsv").write_bytes("a b\tb a\ncafé\tcafé\n".encode("latin-1"))
    (work / "blank.txt").write_text("\n  \n")
    (work / "open-quote.csv").write_text('text,label\n"a 12" pizza,pos\nbad,neg\n')
    names = [("김", "PS"), ("서울", "LC"), ("은행", "OG")]
    sentences = []
    for _ in range(60):
        name, kind = rng.choice(names)
        tags = [f"B-{kind}", *[f"I-{kind}"] * (len(name) - 1)]
        sentences.append("".join(f"{c}\t{t}\n" for c, t in zip(name + "에 갔다", tags + ["O"] * 4)))
    (work / "entities.tsv").write_text("\n".join(sentences))
    (work / "other-tags.tsv").write_text("김\tB-PS\n씨\tB-TITLE\n")
    (work / "missing-tag.tsv").write_text("김\tB-PS\n씨\n")
    (work / "latin1-tags.tsv").write_bytes("café\tO\n".encode("latin-1"))
    (work / "empty.tsv").write_text("")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Data files, one finished two-epoch run per app (`runs/sentiment` ...), a plain file and a foreign folder."""
    work = tmp_path_factory.mktemp("bad-inputs")
    write_data(work)
    threads = torch.get_num_threads()
    for app, argv in TRAIN.items():
        assert main([a.format(work=work) for a in argv] + ["--out", str(work / "runs" / app)]) == 0
    torch.set_num_threads(threads)
    (work / "a-file").write_text("my notes\n")
    (work / "foreign").mkdir()
    (work / "foreign" / "thesis.tex").write_text("\\section{Mine}\n")
    project = work / "my-project"  # a user's folder whose names happen to be a run's
    (project / "checkpoints").mkdir(parents=True)
    (project / "settings.json").write_text('{"editor": "mine"}\n')
    (project / "checkpoints" / "model_epoch3.pt").write_bytes(b"weights")
    (project / "log.csv").write_text("step,loss\n1,0.5\n")
    (work / "latin1.csv").write_bytes("text,label\ncafé,pos\nbad,neg\n".encode("latin-1"))
    return work


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else b"<dir>"
            for path in sorted(root.rglob("*"))}


def train(app: str, *more: str) -> list[str]:
    return [*TRAIN[app], *more]


# (case id, command line, exit status, what stderr must say). {work} is the module's folder.
CASES = [
    *[case for app in TRAIN for case in [
        (f"{app}-out-is-a-file", train(app, "--out", "{work}/a-file"), 1, r"--out .*a-file is a file, not a directory"),
        (f"{app}-out-holds-foreign-files", train(app, "--out", "{work}/foreign"), 1,
         r"Refusing to write a training run into .*foreign: it holds files that no seqlab run wrote \(thesis.tex\)"),
        (f"{app}-out-holds-an-earlier-run", train(app, "--out", f"{{work}}/runs/{app}"), 1,
         r"already holds a training run \(2 epoch\(s\) done\)\. Continue it with --resume, replace it with "
         r"--overwrite"),
        (f"{app}-out-inside-a-file", train(app, "--out", "{work}/a-file/run"), 1,
         r"--out .*a-file/run cannot be made: .*a-file is a file, not a directory"),
        (f"{app}-zero-threads", train(app, "--out", "{work}/new", "--threads", "0"), 1,
         r"--threads must be a whole number of at least 1, got 0"),
        (f"{app}-out-holds-a-users-settings-json", train(app, "--out", "{work}/my-project"), 1,
         r"Refusing to write a training run into .*my-project: it holds files that no seqlab run wrote "
         r"\(checkpoints, log.csv, settings.json\)"),
        (f"{app}-resume-without-a-run", train(app, "--out", "{work}/nothing-here", "--resume"), 1,
         r"Nothing to resume in .*nothing-here: it holds no settings.json"),
        (f"{app}-resume-with-other-settings", train(app, "--out", f"{{work}}/runs/{app}", "--resume", A_SETTING[app],
                                                    "999"),
         1, rf"--resume continues the run in .* with its own settings, but {A_SETTING[app]} 999 \(the run has \d+\)"),
        (f"{app}-zero-epochs", train(app, "--out", "{work}/new", "--epochs", "0"), 1,
         r"epochs must be a positive (integer|whole number), got 0"),
    ]],
    ("sentiment-max-minutes-0", train("sentiment", "--out", "{work}/new", "--max-minutes", "0"), 1,
     r"max_minutes must be a positive number of minutes \(leave it out for no limit\), got 0"),
    ("sentiment-split-with-a-csv", train("sentiment", "--out", "{work}/new", "--split", "official"), 1,
     r"--split chooses between IMDb's protocols; csv:.* has one split of its own\. Drop --split"),
    ("sentiment-labels-with-nsmc", ["sentiment", "train", "--dataset", "nsmc", "--labels", "a,b", "--out",
                                    "{work}/new"], 1, r"--labels describes a CSV file; nsmc is not one"),
    ("sentiment-text-column-with-nsmc", ["sentiment", "train", "--dataset", "nsmc", "--text-column", "text",
                                         "--out", "{work}/new"], 1, r"--text-column describes a CSV file"),
    ("sentiment-no-quoting-with-nsmc", ["sentiment", "train", "--dataset", "nsmc", "--no-quoting", "--out",
                                        "{work}/new"], 1, r"--quoting describes a CSV file; nsmc is not one"),
    ("sentiment-csv-with-a-stray-quote", train("sentiment", "--out", "{work}/new", "--dataset",
                                               "csv:{work}/open-quote.csv"), 1,
     r"open-quote.csv: line 2: .*read them as text: --no-quoting on the command line"),
    ("charlm-text-not-utf8", train("charlm", "--out", "{work}/new", "--text", "{work}/latin1.txt"), 1,
     r"latin1.txt: byte offset 14: bytes b'\\xe9' are not valid utf-8 .*--decode-errors replace on the command "
     r"line"),
    ("charlm-a-folder-without-text-files", train("charlm", "--out", "{work}/new", "--text", "{work}/foreign"), 1,
     r"foreign has no files matching '\*\.txt': give a text file, or a folder of \*\.txt files"),
    ("translate-pairs-not-utf8", train("translate", "--out", "{work}/new", "--pairs", "tsv:{work}/latin1.tsv"), 1,
     r"latin1.tsv: byte offset 11: .*--decode-errors replace on the command line"),
    ("sentiment-heads-with-an-rnn", train("sentiment", "--out", "{work}/new", "--heads", "2"), 1,
     r"--heads means nothing for --arch rnn and would be ignored: drop it"),
    ("sentiment-evaluate-data-options-without-dataset",
     ["sentiment", "evaluate", "--model", "{work}/runs/sentiment", "--split", "official"], 1,
     r"--split describes the data given with --dataset; without --dataset the model is scored on the data it "
     r"was trained on"),
    ("sentiment-predict-a-charlm-model", ["sentiment", "predict", "--model", "{work}/runs/charlm", "hi"], 1,
     r"holds a seqlab model but not a sentiment model"),
    ("sentiment-predict-no-model", ["sentiment", "predict", "--model", "{work}/nowhere", "hi"], 1,
     r"No model directory at .*nowhere"),
    ("charlm-max-minutes-0", train("charlm", "--out", "{work}/new", "--max-minutes", "0"), 1,
     r"max_minutes must be positive \(leave it out for no limit\), got 0"),
    ("charlm-max-steps-0", train("charlm", "--out", "{work}/new", "--max-steps", "0"), 1,
     r"max_steps must be positive \(leave it out for no limit\), got 0"),
    ("charlm-heads-with-an-rnn", train("charlm", "--out", "{work}/new", "--heads", "2"), 1,
     r"--heads means nothing for --arch rnn"),
    ("charlm-cell-with-a-transformer", train("charlm", "--out", "{work}/new", "--arch", "transformer", "--cell",
                                             "gru"), 1, r"--cell means nothing for --arch transformer"),
    ("charlm-generate-a-sentiment-model", ["charlm", "generate", "--model", "{work}/runs/sentiment"], 1,
     r"has no character vocabulary in config.json \(its tokenizer is SentimentTextEncoder\); generate needs a "
     r"model saved by `seqlab charlm train`"),
    ("charlm-generate-a-translator", ["charlm", "generate", "--model", "{work}/runs/translate"], 1,
     r"\(it holds a Translator without a tokenizer\)"),
    ("translate-limit-0", train("translate", "--out", "{work}/new", "--limit", "0"), 1,
     r"limit must be a positive whole number \(leave it out for all\), got 0"),
    ("translate-train-without-pairs", ["translate", "train", "--out", "{work}/new"], 2,
     r"give --pairs \(fra-eng, kor-eng or tsv:PATH\), or --resume"),
    ("translate-max-length-0", ["translate", "--model", "{work}/runs/translate", "--max-length", "0", "a b"], 1,
     r"--max-length must be at least 1 output token"),
    ("translate-beam-0", ["translate", "--model", "{work}/runs/translate", "--beam", "0", "a b"], 1,
     r"--beam must be 1 \(greedy\) or more, got 0"),
    ("translate-a-sentiment-model", ["translate", "--model", "{work}/runs/sentiment", "hi"], 1,
     r"holds a Sequential, not a Translator"),
    ("translate-unknown-words", ["translate", "--model", "{work}/runs/translate", "zebra"], 1,
     r"None of the words of 'zebra' is in the source vocabulary"),
    ("summary-of-a-run-directory", ["summary", "{work}/runs/charlm"], 1,
     r"is a training run's output directory, not a model directory; its model is in .*runs/charlm/model"),
    ("summary-of-nothing", ["summary", "{work}/nowhere"], 1, r"No model directory at .*nowhere"),
    ("sentiment-embeddings-not-vectors", train("sentiment", "--out", "{work}/new", "--embeddings",
                                                 "{work}/runs/charlm"), 1,
     r"runs/charlm holds no vectors.json: it is not a directory of word vectors; give the --out of `seqlab "
     r"embeddings train`"),
    ("sentiment-freeze-without-embeddings", train("sentiment", "--out", "{work}/new", "--freeze-embeddings"), 1,
     r"--freeze-embeddings keeps the vectors of --embeddings DIR fixed; give --embeddings too"),
    ("tag-missing-tag-column", train("tag", "--out", "{work}/new", "--dataset", "tsv:{work}/missing-tag.tsv"), 1,
     r"missing-tag.tsv:2: no tab in '씨'; each line must be token<TAB>tag"),
    ("tag-empty-file", train("tag", "--out", "{work}/new", "--dataset", "tsv:{work}/empty.tsv"), 1,
     r"empty.tsv holds no tagged sentence"),
    ("tag-not-utf8", train("tag", "--out", "{work}/new", "--dataset", "tsv:{work}/latin1-tags.tsv"), 1,
     r"latin1-tags.tsv: byte offset 3: .*--decode-errors replace on the command line"),
    ("tag-unknown-dataset", train("tag", "--out", "{work}/new", "--dataset", "conll"), 1,
     r"unknown dataset 'conll'; expected one of ud-ewt, klue-ner, conll:PATH, tsv:PATH"),
    ("tag-evaluate-unknown-tags", ["tag", "evaluate", "--model", "{work}/runs/tag", "--dataset",
                                   "tsv:{work}/other-tags.tsv"], 1,
     r"other-tags.tsv has tags the model was not trained on: \['B-TITLE'\]"),
    ("tag-predict-a-sentiment-model", ["tag", "predict", "--model", "{work}/runs/sentiment", "김"], 1,
     r"holds a Sequential, not a Tagger"),
    ("tag-freeze-without-embeddings", train("tag", "--out", "{work}/new", "--freeze-embeddings"), 1,
     r"--freeze-embeddings keeps the vectors of --embeddings DIR fixed; give --embeddings too"),
    ("embeddings-text-not-utf8", train("embeddings", "--out", "{work}/new", "--corpus", "text:{work}/latin1.txt"), 1,
     r"latin1.txt: byte offset 14: bytes b'\\xe9' are not valid utf-8 .*--decode-errors replace on the command "
     r"line"),
    ("embeddings-no-word-above-min-count", train("embeddings", "--out", "{work}/new", "--min-count", "100000"), 1,
     r"no word occurs 100000 times or more \(the most frequent, 'the', occurs \d+\); lower min_count"),
    ("embeddings-empty-corpus", train("embeddings", "--out", "{work}/new", "--corpus", "text:{work}/blank.txt"), 1,
     r"empty corpus: the 1 file\(s\) under .*blank.txt hold no text"),
    ("embeddings-unknown-corpus", train("embeddings", "--out", "{work}/new", "--corpus", "wiki"), 1,
     r"unknown corpus 'wiki'; expected one of \['imdb', 'imdb-all', 'nsmc', 'gutenberg', 'koconovel'\] or "
     r"text:PATH"),
    ("embeddings-ngrams-backwards", train("embeddings", "--out", "{work}/new", "--subwords", "--min-n", "5",
                                          "--max-n", "3"), 1, r"subword n-grams need 1 <= min_n <= max_n"),
    ("embeddings-similar-unknown-word", ["embeddings", "similar", "--model", "{work}/runs/embeddings", "zebra"], 1,
     r"'zebra' is not in the vocabulary of \d+ words; train with subwords \(fastText\)"),
    ("embeddings-similar-a-sentiment-model", ["embeddings", "similar", "--model", "{work}/runs/sentiment", "good"],
     1, r"holds no vectors.json: it is not a directory of word vectors"),
    ("embeddings-export-onto-a-directory", ["embeddings", "export", "--model", "{work}/runs/embeddings",
                                            "{work}/foreign"], 1,
     r"Cannot write the file .*foreign: a directory of that name exists"),
    ("embeddings-plot-not-a-picture", ["embeddings", "plot", "--model", "{work}/runs/embeddings", "island", "--out",
                                       "{work}/words.txt"], 1, r"--out must end in .png or .svg"),
]


@pytest.mark.parametrize("argv, status, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_command_line_gets_one_clear_error_and_changes_no_file(work, capsys, argv, status, message):
    before = snapshot(work)
    assert main([a.format(work=work) for a in argv]) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and len(error) < 400, error  # one line, no traceback, no vocabulary dump
    assert error.startswith("seqlab ")
    assert re.search(message, error), error
    assert snapshot(work) == before


def test_matrix_size():
    """The closing note of issue 22 counts these cases; keep it honest."""
    assert len(CASES) == 5 * 9 + 27 + 11 + 7


# ------------------------------------------------------------ damaged or hostile model directories

@pytest.fixture
def sentiment_copy(work, tmp_path) -> Path:
    return Path(shutil.copytree(work / "runs" / "sentiment" / "model", tmp_path / "model"))


def predict(model: Path, capsys, *texts: str) -> tuple[int, str]:
    status = main(["sentiment", "predict", "--model", str(model), *texts])
    captured = capsys.readouterr()
    return status, captured.err


def test_a_flipped_byte_in_the_weights_is_caught_by_the_checksum(sentiment_copy, capsys):
    weights = sentiment_copy / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10
    weights.write_bytes(bytes(data))
    status, error = predict(sentiment_copy, capsys, "good")
    assert status == 1 and f"{WEIGHTS_FILE} does not match the checksum config.json records" in error


def test_a_truncated_weights_file_is_one_clear_error(sentiment_copy, capsys):
    weights = sentiment_copy / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    status, error = predict(sentiment_copy, capsys, "good")
    assert status == 1 and len(error.strip().splitlines()) == 1 and "Traceback" not in error


def test_nan_weights_are_refused_by_name(sentiment_copy, capsys):
    weights = sentiment_copy / WEIGHTS_FILE
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, weights)
    config = json.loads((sentiment_copy / CONFIG_FILE).read_text())
    # with a checksum that agrees, so that what refuses them is the finiteness check
    config["sha256"][WEIGHTS_FILE] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (sentiment_copy / CONFIG_FILE).write_text(json.dumps(config))
    status, error = predict(sentiment_copy, capsys, "good")
    assert status == 1 and name in error and "finite" in error.lower()


def test_a_hostile_tokenizer_pattern_in_a_config_is_refused_before_it_runs(sentiment_copy, capsys, monkeypatch):
    monkeypatch.delenv("SEQLAB_TRUST_TOKENIZER_PATTERNS", raising=False)
    config = json.loads((sentiment_copy / CONFIG_FILE).read_text())
    config["tokenizer"]["config"]["vocabulary"]["tokenizer"]["pattern"] = r"(a+)+$"
    (sentiment_copy / CONFIG_FILE).write_text(json.dumps(config))
    status, error = predict(sentiment_copy, capsys, "a" * 30 + "b")  # 2**30 steps if it ran
    assert status == 1 and "custom regular expression '(a+)+$'" in error
    assert "SEQLAB_TRUST_TOKENIZER_PATTERNS=1" in error


# ------------------------------------------------------------ what the commands do with good input

def test_translate_reads_stdin_and_writes_one_json_object_per_line(work, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a b c\nd e\n"))
    assert main(["translate", "--model", str(work / "runs" / "translate"), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["source"] for line in lines] == ["a b c", "d e"]
    assert all(set(line) == {"source", "translation", "tokens", "log_probability", "finished"} for line in lines)


def test_json_output_refuses_nan_instead_of_writing_invalid_json():
    assert json.loads(json_line({"p": 0.5, "text": "좋다"})) == {"p": 0.5, "text": "좋다"}
    assert "좋다" in json_line({"text": "좋다"})  # text kept as typed, not \\uc88b
    with pytest.raises(ValueError, match="NaN or infinity, which JSON cannot carry"):
        json_line({"probability": float("nan")})


@pytest.mark.parametrize("command", [["sentiment", "predict", "--model", "{work}/runs/sentiment", "--file", "{lines}"],
                                     ["charlm", "generate", "--model", "{work}/runs/charlm", "--length", "100000",
                                      "--seed", "1"]])
def test_a_reader_that_leaves_early_ends_the_command_quietly(work, tmp_path, command):
    lines = tmp_path / "lines.txt"
    lines.write_text("good film\n" * 20000)
    argv = [a.format(work=work, lines=lines) for a in command]
    process = subprocess.Popen([sys.executable, "-m", "seqlab", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout.read(5)  # like `| head -c 5`
    process.stdout.close()
    error = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert "BrokenPipeError" not in error and "Traceback" not in error, error


@pytest.mark.parametrize("app", list(TRAIN))
def test_overwrite_replaces_the_run_and_keeps_the_users_own_files(work, tmp_path, app):
    out = tmp_path / "run"
    result, weights = RESULT_FILES.get(app, ("model", WEIGHTS_FILE))
    assert main([a.format(work=work) for a in train(app, "--out", str(out))]) == 0
    (out / "NOTES.md").write_text("lr 0.02 was too high\n")
    (out / result / "notes.json").write_text("{}\n")
    first = (out / result / weights).read_bytes()
    argv = [a.format(work=work) for a in train(app, "--out", str(out), "--overwrite", "--seed", "7")]
    assert main(argv) == 0
    assert (out / "NOTES.md").read_text() == "lr 0.02 was too high\n"
    assert (out / result / "notes.json").read_text() == "{}\n"
    assert (out / result / weights).read_bytes() != first  # another seed: the run was replaced
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 2  # header and the new run's two epochs


@pytest.mark.parametrize("app, result_key", [("sentiment", "test"), ("charlm", "best_epoch"), ("translate", "bleu")])
def test_train_json_prints_one_object_of_results_on_stdout(work, tmp_path, capsys, app, result_key):
    out = tmp_path / "run"
    assert main([a.format(work=work) for a in train(app, "--out", str(out), "--json")]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # the whole of stdout is one JSON object
    assert summary["out"] == str(out) and Path(summary["model"]) == out / "model" and result_key in summary
    assert "Saved " in captured.err or "Translate with" in captured.err  # the hint stays on stderr
    assert "--json" in (out / "command.txt").read_text()


def test_generate_json_gives_each_sample_its_own_object(work, capsys):
    argv = ["charlm", "generate", "--model", str(work / "runs" / "charlm"), "--length", "30", "--seed", "3"]
    assert main([*argv, "--num-samples", "3", "--json"]) == 0
    samples = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["sample"] for s in samples] == [1, 2, 3] and all(s["seed"] == 3 for s in samples)
    assert all(s["text"].startswith(s["prime"]) and len(s["text"]) == len(s["prime"]) + 30 for s in samples)
    assert main([*argv, "--num-samples", "3"]) == 0  # the same samples, streamed as text
    assert capsys.readouterr().out.splitlines() == [s["text"] for s in samples]


def test_resume_refuses_a_text_that_changed_since_the_run_started(work, tmp_path, capsys):
    text = tmp_path / "island.txt"
    text.write_text((work / "island.txt").read_text())
    argv = [a.format(work=work) for a in train("charlm", "--text", str(text), "--out", str(tmp_path / "run"),
                                               "--epochs", "1")]
    assert main(argv) == 0
    with open(text, "a") as file:
        file.write("One more line.")
    capsys.readouterr()
    assert main([*argv, "--resume", "--epochs", "2"]) == 1
    assert "has changed since it started (its SHA-256 differs)" in capsys.readouterr().err


@pytest.mark.parametrize("app, data, evaluate", [
    ("sentiment", "reviews.csv", ["sentiment", "evaluate", "--model", "run"]),
    ("translate", "pairs.tsv", ["translate", "evaluate", "--model", "run", "--examples", "0"])])
def test_evaluate_finds_the_training_data_from_anywhere_and_refuses_it_changed(work, tmp_path, monkeypatch, capsys,
                                                                               app, data, evaluate):
    """Trained on a relative path: recorded as an absolute path with its SHA-256."""
    (tmp_path / "here").mkdir()
    shutil.copy(work / data, tmp_path / "here" / data)
    monkeypatch.chdir(tmp_path / "here")
    argv = [a.format(work=work) for a in train(app, "--out", str(tmp_path / "run"))]
    flag = "--dataset" if app == "sentiment" else "--pairs"
    argv[argv.index(flag) + 1] = ("csv:" if app == "sentiment" else "tsv:") + data
    assert main([*argv, "--no-evaluate"] if app == "translate" else argv) == 0
    monkeypatch.chdir(tmp_path)  # where no `reviews.csv` or `pairs.tsv` is
    evaluate = [part.replace("run", str(tmp_path / "run")) for part in evaluate]
    capsys.readouterr()
    assert main(evaluate) == 0, capsys.readouterr().err
    with open(tmp_path / "here" / data, "a") as file:
        file.write("one more,pos\n" if app == "sentiment" else "a\tb\n")
    capsys.readouterr()
    assert main(evaluate) == 1
    assert "has changed since" in capsys.readouterr().err


def test_an_overwrite_refused_on_its_data_leaves_the_earlier_run_whole(work, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([a.format(work=work) for a in train("sentiment", "--out", str(out))]) == 0
    before = snapshot(out)
    argv = [a.format(work=work) for a in train("sentiment", "--out", str(out), "--overwrite")]
    argv[argv.index("--dataset") + 1] = f"csv:{work / 'latin1.csv'}"
    capsys.readouterr()
    assert main(argv) == 1
    assert "not valid utf-8" in capsys.readouterr().err
    assert snapshot(out) == before  # still resumable: settings, checkpoints, log, model


def test_overwrite_keeps_a_users_file_among_the_checkpoints(work, tmp_path):
    out = tmp_path / "run"
    assert main([a.format(work=work) for a in train("charlm", "--out", str(out))]) == 0
    (out / "checkpoints" / "my-notes.txt").write_text("epoch 2 looked best\n")
    assert main([a.format(work=work) for a in train("charlm", "--out", str(out), "--overwrite")]) == 0
    assert (out / "checkpoints" / "my-notes.txt").read_text() == "epoch 2 looked best\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the replaced run is gone


def test_a_run_killed_right_after_an_overwrite_started_gets_the_earlier_run_back(work, tmp_path, capsys):
    from seqlab.apps.run_directory import RunDirectory
    out = tmp_path / "run"
    argv = [a.format(work=work) for a in train("sentiment", "--out", str(out))]
    assert main(argv) == 0
    log = (out / "log.csv").read_text()
    started = RunDirectory(out, model_dir=out / "model", owned=("summary.json",))
    started.prepare({"units": 4}, resume=False, overwrite=True)  # ... and then killed before any epoch ended
    assert not (out / "log.csv").exists()
    assert main([*argv, "--resume", "--epochs", "3"]) == 0  # the earlier run, continued
    assert (out / "log.csv").read_text().startswith(log) and len((out / "log.csv").read_text().splitlines()) == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
