"""Generation: sampling the next token, stepping a model one token at a time, decoding sequences.

- `sampling`: the next token from logits (scale factor α = 1/temperature, top-k,
  top-p, greedy; `draw`) and `TextGenerator` / `generate_steps`, which prime
  once and then step;
- `stepping`: `Stepper` (an Embedding → RNN(s) → Dense model, one token a step
  from the carried states; the compiled `CellStep` where it computes the cell's
  equation), `WindowStepper` (a causal transformer re-reading a sliding window),
  `stepper_for`;
- `cached_stepping`: `CachedStepper` (a causal transformer, one position a step
  over each block's cached keys and values);
- `decoding`: greedy and beam search over any step function (`StepDecoder`).

    >>> from seqlab.generation import Sampling, TextGenerator
    >>> TextGenerator(model, vocabulary).generate("The island", length=200, sampling=Sampling(scale_factor=2.0))
"""

from seqlab.generation.cached_stepping import CachedStepper
from seqlab.generation.decoding import (Hypothesis, StepDecoder, beam_search, beam_search_batch, greedy_decode,
                                        length_penalty_factor)
from seqlab.generation.sampling import (GenerationStep, Sampling, TextGenerator, UnknownCharactersError, draw,
                                        generate_steps, scale_logits, top_k_mask, top_p_mask)
from seqlab.generation.stepping import PRECISIONS, Stepper, WindowStepper, stepper_for

__all__ = ["PRECISIONS", "CachedStepper", "GenerationStep", "Hypothesis", "Sampling", "StepDecoder", "Stepper",
           "TextGenerator", "UnknownCharactersError", "WindowStepper", "beam_search", "beam_search_batch", "draw",
           "generate_steps", "greedy_decode", "length_penalty_factor", "scale_logits", "stepper_for", "top_k_mask",
           "top_p_mask"]
