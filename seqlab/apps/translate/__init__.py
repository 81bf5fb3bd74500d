"""Attention-based translation: a recurrent or transformer encoder–decoder, trained with teacher forcing.

The recurrent model (`model.py` states its equations) is a bidirectional GRU
encoder and a GRU decoder with Luong's dot-product or Bahdanau's additive
attention (Luong et al. 2015), or none (`attention=None`: plain seq2seq, whose
only view of the source is the encoder's final state); `arch="transformer"` is
the encoder–decoder transformer (`transformer_model.py`), decoded with
key/value caches. Training feeds the true previous word (teacher forcing):
decoder inputs `<sos> y_1 … y_n`, targets `y_1 … y_n <eos>`, padding left out
of the loss. At inference the encoder runs once and the decoder one step at a
time with its carried state, under greedy decoding or beam search
(`seqlab.generation.decoding`). Tokens are lowercased words or sentencepiece
subwords (`--tokenizer subword`). BLEU and chrF (sacrebleu) are measured on
held-out source sentences that never occur in training, against all their
translations in the file.

    >>> data = load_translation_data("fra-eng", "en", "fr", max_words=10, limit=30_000)
    >>> model, history, seconds = train_translator(data, attention="dot", epochs=8)
    >>> model.translate(["I am cold."], beam_width=5)[0].text

Command line (`seqlab translate`):

    seqlab translate train --pairs fra-eng --source en --target fr --model runs/fr
    seqlab translate --model runs/fr --beam 5 --show-attention cold.png "I am cold."
    seqlab translate evaluate --model runs/fr --beam 5

The package: `text` (tokens, vocabularies, encoded pairs), `model`
(`Translator`, the recurrent network), `transformer_model`
(`TransformerTranslator`), `translation` (text in, text out; heatmaps),
`data` (pairs split by source sentence, batches), `settings`, `run` (train,
load, BLEU and chrF) and `cli` (the commands). Importing it registers both models,
so `seqlab.load_model` restores a saved translator.
"""

from seqlab.apps.translate.cli import add_parser
from seqlab.apps.translate.data import KNOWN_PAIRS, TranslationData, load_translation_data, pair_batches
from seqlab.apps.translate.model import ATTENTION_KINDS, CELLS, Translator
from seqlab.apps.translate.transformer_model import TransformerTranslator
from seqlab.apps.translate.run import (BleuReport, TrainedRun, corpus_bleu, corpus_chrf, evaluate_bleu,
                                       load_translator, run_settings, train, train_translator)
from seqlab.apps.translate.settings import PairSettings, Settings
from seqlab.apps.translate.text import (EOS, SOS, TranslationInputError, build_vocabularies, detokenize,
                                        encode_pairs, make_tokenizer, make_tokenizers, text_of)
from seqlab.apps.translate.translation import Translation, attention_figure, save_attention_heatmap

__all__ = [
    "add_parser", "attention_figure", "ATTENTION_KINDS", "BleuReport", "build_vocabularies", "CELLS", "corpus_bleu",
    "corpus_chrf", "detokenize", "encode_pairs", "EOS", "evaluate_bleu", "KNOWN_PAIRS", "load_translation_data",
    "load_translator", "make_tokenizer", "make_tokenizers", "pair_batches", "PairSettings", "run_settings",
    "save_attention_heatmap", "Settings", "SOS", "text_of", "train", "train_translator", "TrainedRun",
    "TransformerTranslator", "Translation", "TranslationData", "TranslationInputError", "Translator",
]
