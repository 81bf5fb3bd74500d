// Word2Vec and fastText training, skip-gram and CBOW with negative sampling: `seqlab.embeddings`' fast path.
//
// The training that word2vec.c and gensim do, one pass over a block of sentences, Hogwild on `threads`
// threads (each a contiguous share of the sentences, all updating the same rows without locks):
//
//   subsampling   position t is kept with probability keep[w_t] (drawn before the windows, so a window
//                 reaches past the dropped words);
//   window        for each kept centre t a reduced window b ~ U{1..window}; its contexts are the kept
//                 positions t-b..t+b other than t, inside the sentence;
//   input         h(w) = mean of the input rows of w (its own row, and its character n-gram buckets when
//                 fastText's subwords are on); skip-gram's input is each context word and the centre is
//                 its target (word2vec.c's and gensim's order; fastText's is the reverse, the same pairs);
//                 CBOW's input is the mean (or the sum) of the contexts' h and the centre is the target;
//   targets       the positive target o with label 1 and `negative` draws n from the noise distribution
//                 with label 0 (a draw equal to o is skipped, as word2vec.c does):
//                   f = h · C_o,   g = (label - sigmoid(f)) * alpha,   e += g C_o,   C_o += g h
//                 then every input row of the pair gets e (CBOW with a sum: e / count), unscaled as in
//                 fastText and gensim. Minimizing -log sigmoid(h·C_o) - Σ_n log sigmoid(-h·C_n) by SGD.
//   alpha         falls linearly from alpha_begin to alpha_end over the block's words, shared by threads.
//
//   train(corpus (N,) int32, sentence_starts (S+1,) int64, keep (V,) float32, noise (V,) int64 cumulative,
//         input (R, d) float32, output (V, d) float32, row_starts (V+1,) int64, rows (M,) int64, ...)
//     -> [loss, targets, kept words, words]
//
// `noise[i]` is the running sum of the noise weights (count^0.75 scaled to integers): a draw r uniform in
// [0, noise[V-1]) picks the first i with noise[i] > r. Each thread draws from its own xorshift64* stream
// seeded from (seed, thread), so one thread gives the same vectors on every run.

#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

using torch::Tensor;

namespace {

struct Random {
  uint64_t state;
  explicit Random(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL) {
    if (state == 0) state = 1;
  }
  uint64_t next() {  // xorshift64*
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
};

struct Problem {
  const int32_t* corpus;
  const int64_t* sentence_starts;
  const float* keep;
  const int64_t* noise;
  int64_t vocabulary;
  float* input;
  float* output;
  const int64_t* row_starts;  // null: word w's only input row is w
  const int64_t* rows;
  int64_t dim;
  bool skipgram;
  int64_t window;
  int64_t negative;
  bool cbow_mean;
  double alpha_begin;
  double alpha_end;
  int64_t total_words;
  bool compute_loss;
};

struct Tally {
  double loss = 0;
  int64_t targets = 0;
  int64_t kept = 0;
};

inline float dot(const float* a, const float* b, int64_t n) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

inline void add_scaled(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

inline double log_sigmoid(double f) { return f >= 0 ? -std::log1p(std::exp(-f)) : f - std::log1p(std::exp(f)); }

class Worker {
 public:
  Worker(const Problem& p, std::atomic<int64_t>& done, uint64_t seed)
      : p_(p), done_(done), random_(seed), h_(p.dim), error_(p.dim), alpha_(static_cast<float>(p.alpha_begin)) {}

  Tally run(int64_t first_sentence, int64_t last_sentence) {
    int64_t since_report = 0;
    for (int64_t s = first_sentence; s < last_sentence; ++s) {
      const int64_t begin = p_.sentence_starts[s], end = p_.sentence_starts[s + 1];
      kept_.clear();
      for (int64_t t = begin; t < end; ++t) {
        const int32_t w = p_.corpus[t];
        if (p_.keep[w] >= 1.0f || random_.uniform() < p_.keep[w]) kept_.push_back(w);
      }
      tally_.kept += static_cast<int64_t>(kept_.size());
      since_report += end - begin;
      if (since_report >= 10000) {  // word2vec.c refreshes alpha every 10k words
        const int64_t seen = done_.fetch_add(since_report) + since_report;
        since_report = 0;
        const double progress = std::min(1.0, static_cast<double>(seen) / std::max<int64_t>(1, p_.total_words));
        alpha_ = static_cast<float>(p_.alpha_begin + (p_.alpha_end - p_.alpha_begin) * progress);
      }
      sentence();
    }
    done_.fetch_add(since_report);
    return tally_;
  }

 private:
  void sentence() {
    const int64_t n = static_cast<int64_t>(kept_.size());
    for (int64_t t = 0; t < n; ++t) {
      const int64_t reach = 1 + random_.below(p_.window);
      const int64_t from = std::max<int64_t>(0, t - reach), to = std::min(n, t + reach + 1);
      if (p_.skipgram) {
        for (int64_t c = from; c < to; ++c)
          if (c != t) skipgram_pair(kept_[c], kept_[t]);
      } else {
        cbow(t, from, to);
      }
    }
  }

  // The input rows of word w: [first, last) of p_.rows, or w alone.
  void rows_of(int32_t w, const int64_t*& first, const int64_t*& last, int64_t& single) const {
    if (p_.row_starts == nullptr) {
      single = w;
      first = &single;
      last = first + 1;
    } else {
      first = p_.rows + p_.row_starts[w];
      last = p_.rows + p_.row_starts[w + 1];
    }
  }

  // h += scale * mean of w's input rows.
  void add_input(int32_t w, float scale) {
    const int64_t *first, *last;
    int64_t single;
    rows_of(w, first, last, single);
    const float share = scale / static_cast<float>(last - first);
    for (const int64_t* r = first; r != last; ++r) add_scaled(h_.data(), share, p_.input + *r * p_.dim, p_.dim);
  }

  void update_input(int32_t w, float scale) {
    const int64_t *first, *last;
    int64_t single;
    rows_of(w, first, last, single);
    for (const int64_t* r = first; r != last; ++r) add_scaled(p_.input + *r * p_.dim, scale, error_.data(), p_.dim);
  }

  // The positive target and its negatives against h_; accumulates the input's error in error_.
  void targets(int32_t positive) {
    std::fill(error_.begin(), error_.end(), 0.0f);
    const int64_t total = p_.noise[p_.vocabulary - 1];
    for (int64_t k = 0; k <= p_.negative; ++k) {
      int64_t target = positive;
      float label = 1.0f;
      if (k > 0) {
        const int64_t r = random_.below(total);
        target = std::upper_bound(p_.noise, p_.noise + p_.vocabulary, r) - p_.noise;
        if (target == positive) continue;
        label = 0.0f;
      }
      float* out = p_.output + target * p_.dim;
      const float f = dot(h_.data(), out, p_.dim);
      const float sigmoid = 1.0f / (1.0f + std::exp(-f));
      const float g = (label - sigmoid) * alpha_;
      if (p_.compute_loss) tally_.loss -= log_sigmoid(label > 0 ? f : -f);
      tally_.targets += 1;
      add_scaled(error_.data(), g, out, p_.dim);
      add_scaled(out, g, h_.data(), p_.dim);
    }
  }

  void skipgram_pair(int32_t input, int32_t target) {
    std::fill(h_.begin(), h_.end(), 0.0f);
    add_input(input, 1.0f);
    targets(target);
    update_input(input, 1.0f);
  }

  void cbow(int64_t t, int64_t from, int64_t to) {
    const int64_t count = to - from - 1;
    if (count <= 0) return;
    std::fill(h_.begin(), h_.end(), 0.0f);
    const float scale = p_.cbow_mean ? 1.0f / static_cast<float>(count) : 1.0f;
    for (int64_t c = from; c < to; ++c)
      if (c != t) add_input(kept_[c], scale);
    targets(kept_[t]);
    const float share = p_.cbow_mean ? 1.0f : 1.0f / static_cast<float>(count);
    for (int64_t c = from; c < to; ++c)
      if (c != t) update_input(kept_[c], share);
  }

  const Problem& p_;
  std::atomic<int64_t>& done_;
  Random random_;
  std::vector<float> h_, error_;
  std::vector<int32_t> kept_;
  float alpha_ = 0;
  Tally tally_;
};

void check(bool condition, const char* message) { TORCH_CHECK(condition, "word2vec train: ", message); }

}  // namespace

std::vector<double> train_word2vec(const Tensor& corpus, const Tensor& sentence_starts, const Tensor& keep,
                                   const Tensor& noise, Tensor input, Tensor output,
                                   const std::optional<Tensor>& row_starts, const std::optional<Tensor>& rows,
                                   bool skipgram, int64_t window, int64_t negative, bool cbow_mean,
                                   double alpha_begin, double alpha_end, int64_t seed, int64_t threads,
                                   bool compute_loss) {
  check(corpus.dtype() == torch::kInt32 && corpus.is_contiguous(), "corpus must be contiguous int32");
  check(sentence_starts.dtype() == torch::kInt64 && sentence_starts.dim() == 1 && sentence_starts.numel() >= 1,
        "sentence_starts must be int64 (S+1,)");
  check(keep.dtype() == torch::kFloat32 && noise.dtype() == torch::kInt64, "keep float32, noise int64");
  check(input.dtype() == torch::kFloat32 && output.dtype() == torch::kFloat32 && input.is_contiguous() &&
            output.is_contiguous() && input.size(1) == output.size(1),
        "input and output vectors must be contiguous float32 of the same width");
  check(window >= 1 && negative >= 0 && threads >= 1, "window >= 1, negative >= 0, threads >= 1");
  check(row_starts.has_value() == rows.has_value(), "row_starts and rows come together");
  const int64_t vocabulary = output.size(0);
  check(keep.numel() == vocabulary && noise.numel() == vocabulary && vocabulary > 0 &&
            noise[vocabulary - 1].item<int64_t>() > 0,
        "keep and noise need one entry per output row, and some noise weight");
  if (row_starts) {
    check(row_starts->dtype() == torch::kInt64 && rows->dtype() == torch::kInt64 &&
              row_starts->numel() == vocabulary + 1,
          "row_starts (V+1,) and rows must be int64");
  }
  // Contiguous copies held here, so that the pointers below stay valid until the threads are done.
  const Tensor starts = sentence_starts.contiguous(), keep_ = keep.contiguous(), noise_ = noise.contiguous();
  const Tensor row_starts_ = row_starts ? row_starts->contiguous() : Tensor();
  const Tensor rows_ = rows ? rows->contiguous() : Tensor();
  const int64_t sentences = starts.numel() - 1;
  const int64_t* s = starts.data_ptr<int64_t>();
  Problem p{corpus.data_ptr<int32_t>(), s, keep_.data_ptr<float>(), noise_.data_ptr<int64_t>(),
            vocabulary, input.data_ptr<float>(), output.data_ptr<float>(),
            row_starts ? row_starts_.data_ptr<int64_t>() : nullptr, rows ? rows_.data_ptr<int64_t>() : nullptr,
            input.size(1), skipgram, window, negative, cbow_mean, alpha_begin, alpha_end, s[sentences] - s[0],
            compute_loss};
  std::atomic<int64_t> done{0};
  // Contiguous shares of about equal word counts, one per thread.
  std::vector<int64_t> bounds{0};
  for (int64_t k = 1; k < threads; ++k) {
    const int64_t goal = s[0] + (s[sentences] - s[0]) * k / threads;
    bounds.push_back(std::max(bounds.back(), std::upper_bound(s, s + sentences, goal) - s - 1));
  }
  bounds.push_back(sentences);
  std::vector<Tally> tallies(threads);
  {
    pybind11::gil_scoped_release released;
    std::vector<std::thread> pool;
    for (int64_t k = 1; k < threads; ++k)
      pool.emplace_back([&, k] { tallies[k] = Worker(p, done, seed * 1000003 + k).run(bounds[k], bounds[k + 1]); });
    tallies[0] = Worker(p, done, seed * 1000003).run(bounds[0], bounds[1]);
    for (auto& thread : pool) thread.join();
  }
  Tally total;
  for (const Tally& t : tallies) {
    total.loss += t.loss;
    total.targets += t.targets;
    total.kept += t.kept;
  }
  return {total.loss, static_cast<double>(total.targets), static_cast<double>(total.kept),
          static_cast<double>(p.total_words)};
}
