"""BLEU and chrF of seq2seq without attention, with dot and additive attention, and of the transformer, on
word and subword tokens (a benchmark, not a test).

Each variant trains on the same pairs with the same seed, then translates the
held-out source sentences (never seen in training) with greedy decoding and
with beam search, scored by sacrebleu against all their translations in the
file. One run per call, so that long runs go one at a time; `report` writes
docs/results/attention.md from the saved results.

    SEQLAB_DATA_DIR=../shared/datasets python benchmarks/translate_results.py run fra-dot
    python benchmarks/translate_results.py run fra-none; ... run kor-additive
    python benchmarks/translate_results.py rescore fra-dot     # BLEU and chrF again, after a change to decoding
    python benchmarks/translate_results.py beam-speed fra-transformer --sentences 500
    python benchmarks/translate_results.py report

Results (JSON) and models go to runs/translate/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from seqlab.apps.translate import evaluate_bleu, load_translation_data, save_attention_heatmap, train_translator
from seqlab.saving import load_model

ROOT = Path(__file__).resolve().parents[1]
TRANSFORMER_MARKER = "<!-- transformer-vs-recurrent: written by benchmarks/transformer_results.py -->"
RUNS = ROOT / "runs" / "translate"
DOCS = ROOT / "docs" / "results"
HEATMAP = DOCS / "attention_en_fr.png"

DATA = {
    "fra": dict(pairs="fra-eng", source="en", target="fr", max_words=10, limit=60_000, test_sources=2000, seed=0),
    "kor": dict(pairs="kor-eng", source="en", target="ko", max_words=10, limit=None, test_sources=500, seed=0),
}
COMMON = dict(embedding_dim=128, dropout=0.1, batch_size=64, lr=2e-3, min_count=2, validation_split=0.02, seed=0)
# float32 projections: this machine's CPU (AMD EPYC, AVX2) has no bfloat16 matrix units, so bfloat16 is slower.
RECURRENT = dict(COMMON, units=128, cell="gru", bidirectional=True, projection_dtype="float32")
TRANSFORMER = dict(COMMON, arch="transformer", heads=4, layers=3, ff_dim=512, label_smoothing=0.1, warmup_steps=400)
SUBWORDS = {"fra": dict(tokenizer="subword", vocab_size=8000, joint_vocabulary=True),
            "kor": dict(tokenizer="subword", vocab_size=2000)}
# 60,000 pairs in 3 epochs do not overfit (validation loss within 0.1 of training loss), so the en→fr subword
# transformer drops no activations; 5,001 en→ko pairs overfit within 20 epochs and keep dropout.
TUNED = {"fra": dict(dropout=0.0)}
EPOCHS = {"fra": 3, "kor": 20}
ATTENTION = {"none": None, "dot": "dot", "additive": "additive"}
VARIANTS = {}
for _data in DATA:
    VARIANTS |= {f"{_data}-{name}": (_data, {**RECURRENT, "attention": attention})
                 for name, attention in ATTENTION.items()}
    if _data == "kor":
        VARIANTS["kor-additive-subword"] = ("kor", {**RECURRENT, "attention": "additive", **SUBWORDS["kor"]})
    VARIANTS[f"{_data}-transformer"] = (_data, TRANSFORMER)
    VARIANTS[f"{_data}-transformer-subword"] = (_data, {**TRANSFORMER, **SUBWORDS[_data], **TUNED.get(_data, {})})
BEAM = dict(beam_width=5, length_penalty=0.6)
EXAMPLES = ["I am cold.", "She is reading a book in the garden.", "We have to leave now.",
            "Where did you put my keys?", "He doesn't like coffee."]
HEATMAP_EXAMPLE = 3


def run(variant: str, threads: int) -> dict:
    """Train one variant, score it, save the model and the results JSON."""
    torch.set_num_threads(threads)
    data_name, settings = VARIANTS[variant]
    data = load_translation_data(**DATA[data_name])
    print(data.summary(), flush=True)
    model, history, seconds = train_translator(data, epochs=EPOCHS[data_name], verbose=2, **settings)
    model.save(RUNS / variant)
    result = {
        "variant": variant, "data": DATA[data_name], "model": settings, "attention": settings.get("attention"),
        "epochs": len(history.history["loss"]), "train_seconds": seconds, "threads": threads,
        "train_pairs": len(data.train_pairs), "test_sources": len(data.test_sources),
        "test_references": sum(map(len, data.test_references)),
        "vocabulary": [len(model.source_vocabulary), len(model.target_vocabulary)],
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history.history, "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    return _score(variant, model, data, result)


def rescore(variant: str, threads: int) -> dict:
    """Score a saved variant again (after a change to decoding), keeping its training record."""
    torch.set_num_threads(threads)
    result = json.loads((RUNS / f"{variant}.json").read_text())
    return _score(variant, load_model(RUNS / variant, compile=False), load_translation_data(**result["data"]), result)


def _score(variant: str, model, data, result: dict) -> dict:
    """BLEU with greedy decoding and beam search on the held-out sentences; write the results JSON."""
    greedy = evaluate_bleu(model, data)
    beam = evaluate_bleu(model, data, **BEAM)
    result.update(greedy=_bleu(greedy), beam={**_bleu(beam), **BEAM},
                  examples=[{"source": t.source, "output": t.text, "references": refs}
                            for t, refs in zip(beam.translations[:5], data.test_references[:5])])
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / f"{variant}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps({k: result[k] for k in ("variant", "epochs", "train_seconds", "greedy", "beam")}, indent=1))
    return result


def _bleu(report) -> dict:
    return {"bleu": report.bleu, "bleu_single_reference": report.bleu_single_reference, "chrf": report.chrf,
            "seconds": report.seconds, "signature": report.signature, "chrf_signature": report.chrf_signature}


def beam_speed(variant: str, threads: int, sentences: int) -> dict:
    """Beam-5 decoding of the first `sentences` held-out sources: one source at a time against batched."""
    from seqlab.generation.decoding import beam_search

    torch.set_num_threads(threads)
    result = json.loads((RUNS / f"{variant}.json").read_text())
    model = load_model(RUNS / variant, compile=False).eval()
    sources = load_translation_data(**result["data"]).test_sources[:sentences]
    started = time.perf_counter()
    with torch.no_grad():
        alone = []
        for text in sources:
            ids = model.encode_sources([text])
            alone.append(beam_search(model, model.start(ids), model.sos, model.eos, BEAM["beam_width"],
                                     model.max_output_length, BEAM["length_penalty"])[0].tokens)
    one_at_a_time = time.perf_counter() - started
    started = time.perf_counter()
    batched = [t.tokens for t in model.translate(sources, **BEAM)]
    together = time.perf_counter() - started
    same = sum(model.target_vocabulary.decode(a) == b for a, b in zip(alone, batched))
    speed = {"sentences": len(sources), "one_at_a_time_seconds": one_at_a_time, "batched_seconds": together,
             "same_output": same, "threads": threads}
    result["beam_speed"] = speed
    (RUNS / f"{variant}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(speed, indent=1))
    return speed


def report() -> str:
    """docs/results/attention.md from the results in runs/translate/, with the heatmap of the best fr model."""
    results = {v: json.loads((RUNS / f"{v}.json").read_text()) for v in VARIANTS if (RUNS / f"{v}.json").is_file()}
    if not results:
        raise SystemExit(f"No results in {RUNS}: run `python benchmarks/translate_results.py run fra-dot` first.")
    lines = [_header(results), "", "| pairs | model | tokens | training pairs | epochs | training time | parameters | "
             "BLEU greedy | BLEU beam 5 | BLEU beam 5, first reference only | chrF greedy | chrF beam 5 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, result in results.items():
        lines.append(f"| en→{result['data']['target']} | {_model_name(result)} | {_tokens(result)} | "
                     f"{result['train_pairs']:,} | {result['epochs']} | {result['train_seconds'] / 60:.1f} min | "
                     f"{result['parameters']:,} | {result['greedy']['bleu']:.1f} | {result['beam']['bleu']:.1f} | "
                     f"{result['beam']['bleu_single_reference']:.1f} | {result['greedy']['chrf']:.1f} | "
                     f"{result['beam']['chrf']:.1f} |")
    lines += ["", *_target_lines(results), "", *_notes(results), "", *_examples(results), "", *_method(results)]
    text = "\n".join(lines) + "\n"
    DOCS.mkdir(parents=True, exist_ok=True)
    page = DOCS / "attention.md"
    existing = page.read_text() if page.is_file() else ""
    if TRANSFORMER_MARKER in existing:  # keep the transformer section (benchmarks/transformer_results.py)
        text += "\n" + TRANSFORMER_MARKER + existing.split(TRANSFORMER_MARKER, 1)[1]
    page.write_text(text)
    return text


def _header(results: dict) -> str:
    first = next(iter(results.values()))
    return ("# Translation with attention: BLEU and chrF on held-out sentences\n\n"
            "Produced by `benchmarks/translate_results.py` (commands below) on this machine's CPU "
            f"({first['threads']} torch thread, 2 cores shared with other training jobs, so times vary with "
            f"their load; torch {first['torch']}). "
            "BLEU is sacrebleu's corpus BLEU over lowercased, word-tokenized text, whatever tokens the model "
            "works in; chrF is sacrebleu's character 6-gram F-score (β = 2) of the output text against the "
            "lowercased references. Both on source sentences that never occur in training, against all their "
            "translations in the file (BLEU also against the first translation only, the stricter number).")


def _model_name(result: dict) -> str:
    model = result["model"]
    if model.get("arch") == "transformer":
        return (f"transformer ({model['layers']}+{model['layers']} blocks × {model['embedding_dim']}, "
                f"{model['heads']} heads, dropout {model['dropout']})")
    return {None: "seq2seq, no attention", "dot": "dot attention (Luong)",
            "additive": "additive attention (Bahdanau)"}[result["attention"]]


def _tokens(result: dict) -> str:
    model = result["model"]
    if model.get("tokenizer", "word") == "word":
        return "words"
    return f"subwords ({model['vocab_size']:,}{', joint' if model.get('joint_vocabulary') else ''})"


def _family(result: dict) -> str:
    return "transformer" if result["model"].get("arch") == "transformer" else "recurrent"


def _target_lines(results: dict) -> list[str]:
    fr = {v: r for v, r in results.items() if r["data"]["target"] == "fr"}
    recurrent = [r for r in fr.values() if _family(r) == "recurrent" and r["attention"]]
    transformers = [r for r in fr.values() if _family(r) == "transformer"]
    lines = []
    if recurrent:
        best = max(recurrent, key=lambda r: r["beam"]["bleu"])
        met = "met" if best["beam"]["bleu"] >= 30 else "NOT met"
        baseline = fr.get("fra-none")
        versus = f"; without attention the same model scores {baseline['beam']['bleu']:.1f}" if baseline else ""
        lines.append(f"- **English→French with attention ≥ 30 BLEU: {met}**: best {best['beam']['bleu']:.1f} "
                     f"({_model_name(best)}, beam 5){versus}.")
    if transformers and recurrent:
        best = max(transformers, key=lambda r: r["beam"]["bleu"])
        best_recurrent = max(recurrent, key=lambda r: r["beam"]["bleu"])
        met = "met" if best["beam"]["bleu"] >= 40 and best["train_seconds"] <= 15 * 60 else "NOT met"
        lines.append(f"- **English→French transformer ≥ 40 BLEU within 15 minutes of training: {met}**: "
                     f"{best['beam']['bleu']:.1f} ({_tokens(best)}, {best['train_seconds'] / 60:.1f} min), "
                     f"against {best_recurrent['beam']['bleu']:.1f} for the best recurrent model "
                     f"({_model_name(best_recurrent)}).")
    for family, word, subword in (("recurrent", "kor-additive", "kor-additive-subword"),
                                  ("transformer", "kor-transformer", "kor-transformer-subword")):
        if word in results and subword in results:
            ratio = results[subword]["beam"]["chrf"] / results[word]["beam"]["chrf"]
            met = "met" if ratio >= 1.3 else "NOT met"
            lines.append(f"- **English→Korean, subwords' chrF ≥ 1.3x words' ({family}): {met}**: "
                         f"{results[subword]['beam']['chrf']:.1f} against {results[word]['beam']['chrf']:.1f} "
                         f"({ratio:.2f}x; BLEU {results[subword]['beam']['bleu']:.1f} against "
                         f"{results[word]['beam']['bleu']:.1f}).")
    for variant, result in results.items():
        speed = result.get("beam_speed")
        if speed:
            factor = speed["one_at_a_time_seconds"] / speed["batched_seconds"]
            lines.append(f"- Beam-5 decoding, {variant}: {speed['sentences']:,} held-out sentences in "
                         f"{speed['batched_seconds']:.1f} s batched against {speed['one_at_a_time_seconds']:.1f} s "
                         f"one sentence at a time ({factor:.1f}x; {speed['same_output']:,} of "
                         f"{speed['sentences']:,} outputs identical), {speed['threads']} thread(s).")
    return lines


def _notes(results: dict) -> list[str]:
    """What the numbers say, computed from the histories (no number here is typed in by hand)."""
    lines = []
    for target in ("fr", "ko"):
        runs = {v: r for v, r in results.items() if r["data"]["target"] == target and "val_loss" in r["history"]}
        if not runs:
            continue
        best_epochs = ", ".join(
            f"{v} {1 + min(range(len(r['history']['val_loss'])), key=r['history']['val_loss'].__getitem__)}"
            f"/{r['epochs']}" for v, r in runs.items())
        lines.append(f"- en→{target}: the epoch with the lowest validation loss, of those run: {best_epochs}.")
    korean = [r for r in results.values() if r["data"]["target"] == "ko" and _tokens(r) == "words"]
    if korean:
        low, high = (f(r["beam"]["bleu"] for r in korean) for f in (min, max))
        lines.append(f"- English→Korean has {korean[0]['train_pairs']:,} training pairs. Korean words carry their "
                     "particles and endings, so a word form is seen rarely (the Korean vocabulary of words seen "
                     f"at least twice has {korean[0]['vocabulary'][1]:,} entries), and the word-level models "
                     f"reach BLEU {low:.1f}–{high:.1f}: not usable translators. Subwords split the forms into "
                     "stems and endings seen often enough to learn; chrF, which gives credit for a right stem "
                     "with a wrong ending, is the fairer score here.")
    return lines


def _examples(results: dict) -> list[str]:
    variant = max((v for v, r in results.items() if r["data"]["target"] == "fr"
                   and (r["attention"] or _family(r) == "transformer")),
                  key=lambda v: results[v]["beam"]["bleu"], default=None)
    if variant is None:
        return []
    model = load_model(RUNS / variant, compile=False)
    translations = model.translate(EXAMPLES, **BEAM)
    shown = translations[HEATMAP_EXAMPLE]
    save_attention_heatmap(shown, HEATMAP, title=f"{shown.source} → {shown.text}")
    name = f"{_model_name(results[variant])}, {_tokens(results[variant])}"
    lines = [f"## Five example translations ({name}, beam 5)", "", "| English | model output |", "|---|---|"]
    lines += [f"| {t.source} | {t.text} |" for t in translations]
    heads = " (the last decoder block's cross-attention, mean over its heads)" if _family(
        results[variant]) == "transformer" else ""
    lines += ["", f"Attention weights for “{shown.source}”{heads} (rows: output tokens, columns: source tokens; "
              "each row sums to 1):", "", f"![attention heatmap]({HEATMAP.name})"]
    for title, names in (("Held-out test sentences (the first five of the test set), " + name, [variant]),
                         ("English→Korean, the first five held-out sentences", [v for v in results
                                                                                if v.startswith("kor-")])):
        shown_runs = [v for v in names if results[v].get("examples")]
        if not shown_runs:
            continue
        lines += ["", f"{title}:", "", "| English | " + " | ".join(shown_runs) + " | reference(s) |",
                  "|---|" + "---|" * (len(shown_runs) + 1)]
        for index, example in enumerate(results[shown_runs[0]]["examples"]):
            outputs = " | ".join(results[v]["examples"][index]["output"] for v in shown_runs)
            lines.append(f"| {example['source']} | {outputs} | {' / '.join(example['references'])} |")
    return lines


def _method(results: dict) -> list[str]:
    recurrent = next((r["model"] for r in results.values() if _family(r) == "recurrent"), RECURRENT)
    transformer = next((r["model"] for r in results.values() if _family(r) == "transformer"), TRANSFORMER)
    lines = ["## What was run", "",
             f"- Recurrent: Embedding({recurrent['embedding_dim']}) + Bidirectional GRU({recurrent['units']}) "
             f"encoder; GRU({2 * recurrent['units']}) decoder started from the encoder's final states; attention "
             "on the decoder outputs, `tanh(W_c [context; h])`, then the output layer (no attention: output layer "
             f"on h). Dropout {recurrent['dropout']}, Adam (learning rate {recurrent['lr']}, global clipnorm 5), "
             f"output projection in {recurrent.get('projection_dtype') or 'float32'}.",
             f"- Transformer: {transformer['layers']} encoder and {transformer['layers']} decoder pre-norm blocks "
             f"of width {transformer['embedding_dim']}, {transformer['heads']} heads, feed-forward "
             f"{transformer['ff_dim']}, sinusoidal positions, dropout as in the table, label smoothing "
             f"{transformer['label_smoothing']}, Adam (learning rate {transformer['lr']} after "
             f"{transformer['warmup_steps']} warm-up steps, then ∝ 1/√step; global clipnorm 5); embeddings "
             "shared between the languages when the vocabulary is joint.",
             f"- Both: batch {recurrent['batch_size']} (length-bucketed), tokens seen fewer than "
             f"{recurrent['min_count']} times are unknown, seed {recurrent['seed']}. Subwords: sentencepiece "
             "unigram models learned from the training pairs only, lowercased, one per language (or one joint "
             "model).",
             "- Data: pairs of at most 10 words on both sides; distinct English sentences shuffled (seed 0), "
             "the held-out ones and all their translations kept out of training; "
             f"{recurrent['validation_split']:.0%} of the training pairs for validation loss only.",
             f"- Decoding: greedy, and beam search width {BEAM['beam_width']} with GNMT length penalty "
             f"α = {BEAM['length_penalty']}, batched over the sentences.", "",
             "| variant | data | vocabularies (en, target) | final loss / val loss | greedy decode time | "
             "beam decode time |", "|---|---|---|---|---|---|"]
    for variant, result in results.items():
        history = result["history"]
        lines.append(f"| {variant} | {result['train_pairs']:,} pairs, {result['test_sources']:,} test sources "
                     f"({result['test_references']:,} refs) | {result['vocabulary'][0]:,}, "
                     f"{result['vocabulary'][1]:,} | {history['loss'][-1]:.2f} / "
                     f"{history.get('val_loss', [float('nan')])[-1]:.2f} | {result['greedy']['seconds']:.0f} s | "
                     f"{result['beam']['seconds']:.0f} s |")
    lines += ["", "Commands:", "", "```", "export SEQLAB_DATA_DIR=../shared/datasets"]
    lines += [f"python benchmarks/translate_results.py run {v}" for v in results]
    lines += [f"python benchmarks/translate_results.py beam-speed {v} --sentences {r['beam_speed']['sentences']}"
              for v, r in results.items() if r.get("beam_speed")]
    lines += ["python benchmarks/translate_results.py report", "```", "",
              f"sacrebleu signatures: BLEU `{next(iter(results.values()))['greedy']['signature']}`, chrF "
              f"`{next(iter(results.values()))['greedy'].get('chrf_signature', '')}`"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train and score one variant")
    run_parser.add_argument("variant", choices=VARIANTS)
    run_parser.add_argument("--threads", type=int, default=1, help="torch threads (1: best on a shared CPU)")
    speed_parser = commands.add_parser("beam-speed", help="time beam search one sentence at a time and batched")
    speed_parser.add_argument("variant", choices=VARIANTS)
    speed_parser.add_argument("--threads", type=int, default=1)
    speed_parser.add_argument("--sentences", type=int, default=500)
    rescore_parser = commands.add_parser("rescore", help="score a saved variant again (BLEU and chrF)")
    rescore_parser.add_argument("variant", choices=VARIANTS)
    rescore_parser.add_argument("--threads", type=int, default=1)
    commands.add_parser("report", help="write docs/results/attention.md")
    args = parser.parse_args()
    os.environ.setdefault("SEQLAB_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    if args.command == "run":
        run(args.variant, args.threads)
    elif args.command == "beam-speed":
        beam_speed(args.variant, args.threads, args.sentences)
    elif args.command == "rescore":
        rescore(args.variant, args.threads)
    else:
        print(report())


if __name__ == "__main__":
    main()
