"""Sequence tagging, many-to-many in step: one tag for every token (part of speech, named entities).

The model (`model.py` states its equations) reads word embeddings and
character features of each token (`char_features.py`: a CNN or a BiLSTM over
the spelling, so unseen words are tagged by their shape), a stack of
Bidirectional LSTMs with `return_sequences=True`, and a per-step softmax or a
linear-chain CRF (`seqlab.layers.CRF`); every step masked, decoding under the
tag set's constraints (for BIO tags, no I-X without its B-X).

    >>> run = train("runs/pos", run_settings(dataset="ud-ewt"))
    >>> run.model.tag([["I", "saw", "her", "duck"]])

Command line (`seqlab tag`):

    seqlab tag train --dataset ud-ewt --out runs/pos              # UD English EWT, UPOS
    seqlab tag train --dataset klue-ner --crf --out runs/ner      # KLUE NER, Korean characters
    seqlab tag evaluate --model runs/ner
    seqlab tag predict --model runs/pos "I don't like green eggs."

The package: `settings`, `data` (which sentences), `encoding` (vocabularies,
ids, batches, splitting new text), `char_features`, `model` (`Tagger`),
`evaluation` (accuracy, seqeval entity scores, confusions), `run` (train,
load, evaluate) and `cli` (the commands). Importing it registers `Tagger`, so
`seqlab.load_model` restores a saved tagger.
"""

from seqlab.apps.tag.cli import add_parser
from seqlab.apps.tag.model import Tagger
from seqlab.apps.tag.run import evaluate_tagger, load_tagger, run_settings, train

__all__ = ["Tagger", "add_parser", "evaluate_tagger", "load_tagger", "run_settings", "train"]
