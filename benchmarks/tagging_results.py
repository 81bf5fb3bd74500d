"""Tagging results: train each configuration, one run at a time, and print the results table.

Each row is the `seqlab tag train` command printed beside it (run here as
`python -m seqlab tag train`); its model and `summary.json` go to
`RUNS_DIR/NAME`. The table (markdown) gives, on the test part: token
accuracy, and for KLUE NER the entity-level F1 (seqeval, strict IOB2; micro
and macro over the six types) and the character-level macro F1; then epochs
run, training wall time (the fit: training and dev passes) and parameters.
Every run has a time budget (`--max-minutes`): no epoch starts that would end
past it.

    SEQLAB_DATA_DIR=/work/shared/datasets python benchmarks/tagging_results.py            # every row
    python benchmarks/tagging_results.py --only klue-crf --reuse                           # one row
    python benchmarks/tagging_results.py --table-only                                      # rows done
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    name: str
    dataset: str
    minutes: float
    options: tuple[str, ...] = ()
    about: str = ""

    def command(self, out: Path, threads: int) -> list[str]:
        return ["seqlab", "tag", "train", "--dataset", self.dataset, *self.options, "--max-minutes",
                f"{self.minutes:g}", "--threads", str(threads), "--verbose", "2", "--out", str(out)]


RUNS = (
    Run("ewt", "ud-ewt", 19, (), "word + character CNN, 2 x BiLSTM(192), softmax"),
    Run("ewt-no-chars", "ud-ewt", 10, ("--char-features", "none"), "without character features"),
    Run("klue-crf", "klue-ner", 12, ("--crf",), "syllable + jamo CNN, 2 x BiLSTM(192), CRF"),
    Run("klue-softmax", "klue-ner", 12, (), "softmax output (constrained Viterbi decoding)"),
    Run("klue-crf-no-chars", "klue-ner", 8, ("--crf", "--char-features", "none"), "CRF, without the jamo CNN"),
    Run("klue-crf-no-dropout", "klue-ner", 8, ("--crf", "--dropout", "0", "--word-dropout", "0"),
        "CRF, without dropout"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/tagging-results"))
    parser.add_argument("--only", nargs="*", help="names of the rows to run (default: all)")
    parser.add_argument("--reuse", action="store_true", help="keep rows whose summary.json exists")
    parser.add_argument("--table-only", action="store_true", help="print the table of the rows done, run nothing")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    chosen = [run for run in RUNS if not args.only or run.name in args.only]
    if not args.table_only:
        for run in chosen:
            out = args.runs_dir / run.name
            if args.reuse and (out / "summary.json").is_file():
                continue
            command = run.command(out, args.threads)
            print("$ " + shlex.join(command), file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", *command, "--overwrite"], check=True)
    print(table(chosen, args.runs_dir, args.threads))
    return 0


def table(runs, runs_dir: Path, threads: int) -> str:
    lines = ["| run | what | token accuracy | entity F1 (micro / macro) | char macro F1 | epochs | training | "
             "parameters | command |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        path = runs_dir / run.name / "summary.json"
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        test, entities = summary["test"], summary["test"].get("entities")
        entity = f"{entities['f1']:.2%} / {entities['macro_f1']:.2%}" if entities else "–"
        char = f"{entities['char_macro_f1']:.2%}" if entities else "–"
        minutes = summary["train_seconds"] / 60
        command = shlex.join(run.command(runs_dir / run.name, threads))
        lines.append(f"| {run.name} | {run.about} | {test['accuracy']:.2%} | {entity} | {char} | "
                     f"{summary['epochs_run']} ({summary['stop_reason']}) | {minutes:.1f} min | "
                     f"{summary['parameters']:,} | `{command}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
