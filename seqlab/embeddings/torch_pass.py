"""The pure-PyTorch pass of Word2Vec training, for machines where the C++ kernel cannot be built.

The same objective, noise and subsampling as `csrc/word2vec.cpp`, but batched:
the kept positions of a block of sentences and their reduced windows are laid
out with index operations, and each batch of `batch_size` examples (a context
word and its centre for skip-gram, a centre and its window for CBOW) takes one
SGD step whose updates are summed with `index_add_`:

    h_e = Σ_r a_er W_r              (a_er: the example's input rows, weighted to a mean)
    g_ek = (label_k - σ(h_e · C_k)) α      e_e = Σ_k g_ek C_k
    C_k += Σ_e g_ek h_e             W_r += Σ_e b_er e_e   (b_er = 1, or 1/count for a CBOW sum)

A sequential kernel applies each pair before the next; summed over a batch the
steps of a frequent word add up, so batches are small (1,024 examples) and the
vectors are close to, not equal to, the kernel's. It runs on all of PyTorch's
intra-op threads.
"""

from __future__ import annotations

import torch


def train_pass(ids: torch.Tensor, sentence_starts: torch.Tensor, keep: torch.Tensor, noise: torch.Tensor,
               input: torch.Tensor, output: torch.Tensor, row_starts: torch.Tensor | None,
               rows: torch.Tensor | None, *, skipgram: bool, window: int, negative: int, cbow_mean: bool,
               alpha_begin: float, alpha_end: float, seed: int, batch_size: int | None = None) -> list[float]:
    """One pass over sentences `sentence_starts` of `ids`; returns [loss, targets, kept words, words]."""
    generator = torch.Generator().manual_seed(seed)
    if batch_size is None:  # summed steps of one row in a batch must stay few, or SGD diverges
        batch_size = min(1024, max(16, output.shape[0] // 8))
    begin, end = int(sentence_starts[0]), int(sentence_starts[-1])
    words = ids[begin:end].long()
    sentence = torch.repeat_interleave(torch.arange(sentence_starts.numel() - 1),
                                       sentence_starts.diff())
    kept = torch.rand(words.shape, generator=generator) < keep[words]
    words, sentence = words[kept], sentence[kept]
    reach = torch.randint(1, window + 1, words.shape, generator=generator)
    centre, context = _window_pairs(sentence, reach, window)
    if skipgram:  # each context word predicts the centre (word2vec.c's order)
        examples, bag_example, bag_word, bag_weight = centre, torch.arange(centre.numel()), words[context], None
        targets = words[centre]
    else:
        examples, inverse = torch.unique(centre, return_inverse=True)
        count = torch.bincount(inverse, minlength=examples.numel()).float()
        bag_example, bag_word, targets = inverse, words[context], words[examples]
        bag_weight = 1.0 / count[inverse]
    loss, target_count = 0.0, 0
    steps = max(1, -(-examples.numel() // batch_size))
    for step in range(steps):
        lo, hi = step * batch_size, min(examples.numel(), (step + 1) * batch_size)
        if lo >= hi:
            break
        alpha = alpha_begin + (alpha_end - alpha_begin) * step / steps
        selected = slice(*torch.searchsorted(bag_example, torch.tensor([lo, hi])).tolist())  # sorted by example
        weights = None if bag_weight is None else bag_weight[selected]
        batch_loss, batch_targets = _sgd_step(
            bag_example[selected] - lo, bag_word[selected], weights, targets[lo:hi], hi - lo, noise, input,
            output, row_starts, rows, negative, cbow_mean, alpha, generator)
        loss, target_count = loss + batch_loss, target_count + batch_targets
    return [loss, float(target_count), float(words.numel()), float(end - begin)]


def _window_pairs(sentence: torch.Tensor, reach: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre, context) positions with |centre - context| <= reach[centre], in one sentence; by centre."""
    positions = torch.arange(sentence.numel())
    centres, contexts = [], []
    for offset in range(1, window + 1):
        for partner in (positions - offset, positions + offset):
            valid = (partner >= 0) & (partner < sentence.numel())
            valid &= reach >= offset
            valid[valid.clone()] &= sentence[partner[valid]] == sentence[valid]
            centres.append(positions[valid])
            contexts.append(partner[valid])
    centre, context = torch.cat(centres), torch.cat(contexts)
    order = torch.argsort(centre * (2 * window + 1) + (context - centre + window), stable=True)
    return centre[order], context[order]


def _sgd_step(bag_example, bag_word, bag_weight, positives, examples, noise, input, output, row_starts, rows,
              negative, cbow_mean, alpha, generator):
    if row_starts is None:
        row_example, row, share = bag_example, bag_word, torch.ones(bag_word.shape)
    else:
        lengths = row_starts[bag_word + 1] - row_starts[bag_word]
        row_example = torch.repeat_interleave(bag_example, lengths)
        first = torch.repeat_interleave(row_starts[bag_word] - torch.cumsum(lengths, 0) + lengths, lengths)
        row = rows[first + torch.arange(int(lengths.sum()))]
        share = torch.repeat_interleave(1.0 / lengths.float(), lengths)
    word_weight = torch.ones(bag_word.shape) if bag_weight is None else bag_weight
    per_row = word_weight if row_starts is None else torch.repeat_interleave(word_weight, lengths)
    h_weight = share * (per_row if cbow_mean or bag_weight is None else 1.0)
    h = torch.zeros(examples, input.shape[1]).index_add_(0, row_example, input[row] * h_weight[:, None])
    draws = torch.searchsorted(noise, torch.randint(0, int(noise[-1]), (examples, negative), generator=generator),
                               right=True)
    targets = torch.cat([positives[:, None], draws], dim=1)
    labels = torch.zeros(targets.shape)
    labels[:, 0] = 1
    counted = torch.ones(targets.shape, dtype=torch.bool)
    counted[:, 1:] = draws != positives[:, None]
    scores = torch.einsum("ed,ekd->ek", h, output[targets])
    gradient = (labels - torch.sigmoid(scores)) * alpha * counted
    signed = torch.where(labels > 0, scores, -scores)
    loss = float(-(torch.nn.functional.logsigmoid(signed) * counted).sum())
    error = torch.einsum("ek,ekd->ed", gradient, output[targets])
    output.index_add_(0, targets.reshape(-1), (gradient[:, :, None] * h[:, None, :]).reshape(-1, h.shape[1]))
    update_weight = torch.ones(row.shape) if cbow_mean or bag_weight is None else per_row
    input.index_add_(0, row, error[row_example] * update_weight[:, None])
    return loss, int(counted.sum())
