"""Moved to `seqlab.generation.decoding` (greedy and beam search); this name stays for existing imports."""

from seqlab.generation.decoding import Hypothesis, StepDecoder, beam_search, greedy_decode, length_penalty_factor

__all__ = ["Hypothesis", "StepDecoder", "beam_search", "greedy_decode", "length_penalty_factor"]
