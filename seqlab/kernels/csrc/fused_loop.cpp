// The recurrent time loop in C++: forward and a hand-written backward.
//
// The same equations as `reference_loop` (seqlab/layers/recurrent.py) and the
// cells' `step` (seqlab/layers/cells.py), for SimpleRNN (tanh or relu), LSTM
// (tanh/sigmoid, with or without peepholes) and GRU (tanh/sigmoid, reset_after
// true or false), with D stacked directions (1, or 2 for a Bidirectional layer, whose
// second direction reads time backwards; with two threads each direction runs
// its whole loop on its own). Each step is one product for the recurrent half,
// h_{t-1} U (BLAS, or oneDNN with U packed once where the product is big), and
// one vectorized pass over the elements that applies the gates and Keras' mask
// and saves what the backward pass needs. The backward pass is written out (no
// autograd graph); the recurrent kernel's gradient is one product over all
// steps, dU[d] = Σ_t (h_{t-1} * m)ᵀ dz_t. `Step` is one step for generation.
//
// Shapes (T time, B batch, D directions, u units, G gates: 1, 4, 3; W = G*u):
//   projected  (D, T, B, W)   x_t W_x, each direction's in input time order;
//              (D, N, W)      with lengths: packed, only the N real steps, time-major (PackedSequence's
//                             order: step tau's rows are the first running(tau) samples)
//   xbias      (D, W)         the input biases b_x, added in the loop (None: the cells have none)
//   U          (D, u, W)      recurrent kernels, Keras' layout and gate order (i f c o / z r h)
//   rbias      (D, 1, W)      GRU reset_after=true: the recurrent bias (None otherwise)
//   peep       (D, 3, u)      LSTM peephole weights p_i, p_f, p_o (None: no peepholes)
//   h0, c0     (D, B, u)      initial states (c0 only for the LSTM)
//   keep       (B, T)         bool, true at real steps, input time order (None: no mask)
//   rdrop      (D, B, u)      recurrent dropout keep-mask, already scaled (None: no dropout)
//   lengths    (B,) int64     for right-padded batches sorted longest first: each step then
//                             computes only the rows that are still running, and `projected` and
//                             its gradient hold only real steps (None: every row, every step)
//   outputs    (B, T, D, u)   in input time order: for D = 2 this is Bidirectional's concat; only
//                             with `sequence` (a many-to-one layer reads h_T, and writing every
//                             step's h to memory would cost time for nothing)
// Direction D-1 runs backwards in time when reverse_last is set. At a masked
// step the states are held and the output repeats the previous output (zeros
// with zero_output), as in Keras. The tensors saved per step for backward have the rows of
// `projected`, (D, T, B, .) in input time order, so the gradient products over time are views
// and the pre-activation gradients are `projected`'s gradient as they stand;
// with lengths they are (D, N, .), each step holding only its running rows.

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/extension.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

using torch::Tensor;

namespace {

enum Cell : int64_t { kSimpleTanh = 0, kSimpleRelu = 1, kLSTM = 2, kGRUResetAfter = 3, kGRUResetBefore = 4 };

// ------------------------------------------------------------------ elementwise math
// The math below is called inside `#pragma omp simd` loops, which vectorize only if every call in them
// is inlined; forced, since a row function shared by several loops otherwise exceeds GCC's budget.
#define ALWAYS_INLINE inline __attribute__((always_inline))

// exp for float32 that the compiler vectorizes (Cephes' expf: range reduction
// to [-ln2/2, ln2/2], degree-6 polynomial, scale by 2^k; relative error ~2e-7).
// NaN propagates. float64 uses std::exp.
ALWAYS_INLINE float exp_fast(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float k = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  return y * std::bit_cast<float>((static_cast<int32_t>(k) + 127) << 23);
}
inline double exp_fast(double x) { return std::exp(x); }

template <typename T> ALWAYS_INLINE T sigmoid(T x) { return T(1) / (T(1) + exp_fast(-x)); }

// tanh for float32, vectorizable: Cephes' tanhf polynomial for |x| < 0.625 (where 1 - 2/(e^2x + 1)
// would cancel the leading digits), else 1 - 2/(e^2x + 1); relative error ~2e-7. float64: std::tanh.
ALWAYS_INLINE float tanh_of(float x) {
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = x + x * z * p;
  const float large = 1.0f - 2.0f / (exp_fast(2.0f * x) + 1.0f);
  return std::fabs(x) < 0.625f ? small : large;
}
inline double tanh_of(double x) { return std::tanh(x); }

// ------------------------------------------------------------------ one step, one row
// A row is one (direction, sample) pair at one step: `x` its projected input x_t W_x, `bias` its
// direction's input bias b_x, `rec` its recurrent product h_{t-1} U (+ the GRU's recurrent bias), `h` and
// `c_prev` its states before the step, `gates` where the activated gates are saved, `new_h` and `c` where
// the step's new h and c go.
// The pointers never overlap (`__restrict__`), which lets the compiler vectorize.
template <typename T>
struct Row {
  const T* __restrict__ x;
  const T* __restrict__ bias;  // zeros for a cell without one
  const T* __restrict__ rec;
  T* __restrict__ gates;
  T* __restrict__ extra;   // LSTM: tanh(c_t); GRU reset_after: h_{t-1} W_hh + b_hh
  const T* __restrict__ h;
  const T* __restrict__ c_prev;  // LSTM only
  T* __restrict__ c;             // LSTM only: c_t
  T* __restrict__ new_h;

  // The input half of pre-activation j: x_t W_x + b_x.
  ALWAYS_INLINE T input(int64_t j) const { return x[j] + bias[j]; }
};

template <typename T>
inline void simple_forward(const Row<T>& row, int64_t u, bool relu) {
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T a = row.input(j) + row.rec[j];
    const T h = relu ? std::max(a, T(0)) : tanh_of(a);
    row.gates[j] = h;
    row.new_h[j] = h;
  }
}

// With peepholes `peep` = (p_i, p_f, p_o), each (u,): i and f add p * c_{t-1}, o adds p_o * c_t.
template <typename T>
inline void lstm_forward(const Row<T>& row, int64_t u, const T* __restrict__ peep) {
  const T* __restrict__ rec = row.rec;
  T* __restrict__ gates = row.gates;
  const T* __restrict__ cell_prev = row.c_prev;
  T* __restrict__ cell = row.c;
  if (peep) {
#pragma omp simd
    for (int64_t j = 0; j < u; ++j) {
      gates[j] = sigmoid(row.input(j) + rec[j] + peep[j] * cell_prev[j]);                              // i
      gates[u + j] = sigmoid(row.input(u + j) + rec[u + j] + peep[u + j] * cell_prev[j]);              // f
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < 2 * u; ++j) gates[j] = sigmoid(row.input(j) + rec[j]);             // i, f
  }
#pragma omp simd
  for (int64_t j = 2 * u; j < 3 * u; ++j) gates[j] = tanh_of(row.input(j) + rec[j]);           // c~
  if (!peep) {
#pragma omp simd
    for (int64_t j = 3 * u; j < 4 * u; ++j) gates[j] = sigmoid(row.input(j) + rec[j]);         // o
  }
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) cell[j] = gates[u + j] * cell_prev[j] + gates[j] * gates[2 * u + j];  // f*c + i*c~
  if (peep) {
#pragma omp simd
    for (int64_t j = 0; j < u; ++j)
      gates[3 * u + j] = sigmoid(row.input(3 * u + j) + rec[3 * u + j] + peep[2 * u + j] * cell[j]);  // o sees c_t
  }
  T* __restrict__ tanh_c = row.extra;
  T* __restrict__ new_h = row.new_h;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    tanh_c[j] = tanh_of(cell[j]);
    new_h[j] = gates[3 * u + j] * tanh_c[j];                                                   // o*tanh(c)
  }
}

// GRU, first half: the update and reset gates z, r.
template <typename T>
inline void gru_gates(const Row<T>& row, int64_t u) {
#pragma omp simd
  for (int64_t j = 0; j < 2 * u; ++j) row.gates[j] = sigmoid(row.input(j) + row.rec[j]);
}

// GRU, second half: h~ from its pre-activation's recurrent part `inner`, then h_t.
//   reset_after:  h~ = tanh(x_h + r * inner), inner = h W_hh + b_hh
//   reset_before: h~ = tanh(x_h + inner),     inner = (r * h) W_hh
template <typename T>
inline void gru_candidate(const Row<T>& row, const T* inner, int64_t u, bool reset_after) {
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T z = row.gates[j], r = row.gates[u + j];
    const T cand = tanh_of(row.input(2 * u + j) + (reset_after ? r * inner[j] : inner[j]));
    row.gates[2 * u + j] = cand;
    row.new_h[j] = z * row.h[j] + (T(1) - z) * cand;  // the cell's own order of operations
  }
  if (reset_after) std::copy(inner, inner + u, row.extra);  // outside the loop: extra is null otherwise
}

// A row's step up to its new h (and c); for the reset_before GRU, up to r * hd (into `rh`), which the
// candidate's second product needs (then `gru_candidate(row, inner, u, false)`). `hd` is the row's
// h_{t-1} times the dropout mask.
template <typename T>
inline void forward_row(int64_t cell, const Row<T>& row, int64_t u, const T* peep, const T* hd, T* rh) {
  if (cell == kLSTM) {
    lstm_forward(row, u, peep);
  } else if (cell == kGRUResetAfter) {
    gru_gates(row, u);
    gru_candidate(row, row.rec + 2 * u, u, true);
  } else if (cell == kGRUResetBefore) {
    gru_gates(row, u);
    const T* r = row.gates + u;
#pragma omp simd
    for (int64_t j = 0; j < u; ++j) rh[j] = r[j] * hd[j];
  } else {
    simple_forward(row, u, cell == kSimpleRelu);
  }
}

template <typename T>
T* ptr(const Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }

Tensor given(const std::optional<Tensor>& t) { return t.has_value() ? t->contiguous() : Tensor(); }

// Rows per parallel task: about 16k gate values, so small layers stay on one thread.
int64_t rows_per_task(int64_t width) { return std::max<int64_t>(1, 16384 / width); }

int64_t gates_of(int64_t cell) { return cell == kLSTM ? 4 : (cell == kSimpleTanh || cell == kSimpleRelu) ? 1 : 3; }

// Where the loop is at processing step t: each direction's input time and running rows.
struct Schedule {
  int64_t T, B, D;
  bool reverse_last;
  const int64_t* lengths;     // sorted longest first, or nullptr
  std::vector<int64_t> first;  // with lengths: the packed row of step tau's first sample (T + 1 entries)

  Schedule(int64_t T, int64_t B, int64_t D, bool reverse_last, const int64_t* lengths)
      : T(T), B(B), D(D), reverse_last(reverse_last), lengths(lengths) {
    if (!lengths) return;
    first.assign(T + 1, 0);
    for (int64_t tau = 0, rows = B; tau < T; ++tau) {  // rows still running at tau: lengths > tau
      while (rows > 0 && lengths[rows - 1] <= tau) --rows;
      first[tau + 1] = first[tau] + rows;
    }
  }
  int64_t time(int64_t d, int64_t t) const { return reverse_last && d == D - 1 ? T - 1 - t : t; }
  int64_t running(int64_t d, int64_t t) const { return running_at(time(d, t)); }
  // Rows per direction in `projected`, its gradient and the saved tensors: T × B, or with lengths the real steps.
  int64_t rows() const { return lengths ? first[T] : T * B; }
  // The row, among the D × rows() rows of `projected`, its gradient and the tensors saved for backward
  // (each direction's rows in input time order, the same for all of them), of direction d's sample b
  // at step t.
  int64_t saved_row(int64_t d, int64_t t, int64_t b) const {
    const int64_t tau = time(d, t);
    return d * rows() + (lengths ? first[tau] + b : tau * B + b);
  }
  // Which sample each saved row belongs to: (D, rows()) int64.
  Tensor sample_of_saved_rows() const {
    Tensor samples = torch::empty({D, rows()}, torch::kLong);
    int64_t* out = samples.data_ptr<int64_t>();
    for (int64_t d = 0; d < D; ++d)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t b = 0, rows = running(d, t); b < rows; ++b) out[saved_row(d, t, b)] = b;
    return samples;
  }

 private:
  int64_t running_at(int64_t tau) const { return lengths ? first[tau + 1] - first[tau] : B; }
};

// ------------------------------------------------------------------ products
// A step's products are small (a batch of rows times a u × W kernel), so they go to BLAS directly,
// without a tensor or a dispatch per call: the Fortran gemm that PyTorch's BLAS (MKL, OpenBLAS)
// exports, else at::mm_out. Matrices are row-major views: element (i, j) of b is
// b[i * b_row + j * b_col], so a transposed kernel is a view too.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

template <typename T>
struct View {
  const T* data;
  int64_t row, col;  // strides
};

// out (m × n, row stride ldo) = a (m × k) · b (k × n) (+ bias (n,), broadcast over rows).
template <typename T>
void gemm(T* out, int64_t ldo, View<T> a, View<T> b, const T* bias, int64_t m, int64_t n, int64_t k) {
  if (m == 0) return;
  if (bias) for (int64_t i = 0; i < m; ++i) std::copy(bias, bias + n, out + i * ldo);
  auto blas = [] {
    if constexpr (std::is_same_v<T, float>) return sgemm_; else return dgemm_;
  }();
  // Column-major BLAS sees row-major out as outᵀ = bᵀ aᵀ; a view with unit column stride is
  // "N" with its row stride as leading dimension, one with unit row stride is "T".
  const bool a_rows = a.col == 1 || k == 1, b_rows = b.col == 1 || n == 1;
  if (blas && (a_rows || a.row == 1) && (b_rows || b.row == 1)) {
    const int M = int(m), N = int(n), K = int(k), ldc = int(ldo);
    const int lda = int(a_rows ? std::max<int64_t>(a.row, k) : std::max<int64_t>(a.col, m));
    const int ldb = int(b_rows ? std::max<int64_t>(b.row, n) : std::max<int64_t>(b.col, k));
    const T one = 1, beta = bias ? 1 : 0;
    blas(b_rows ? "N" : "T", a_rows ? "N" : "T", &N, &M, &K, &one, b.data, &ldb, a.data, &lda, &beta, out, &ldc);
    return;
  }
  auto options = torch::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  Tensor o = torch::from_blob(out, {m, n}, {ldo, 1}, options);
  Tensor ta = torch::from_blob(const_cast<T*>(a.data), {m, k}, {a.row, a.col}, options);
  Tensor tb = torch::from_blob(const_cast<T*>(b.data), {k, n}, {b.row, b.col}, options);
  if (bias) o.addmm_(ta, tb);
  else at::mm_out(o, ta, tb);
}

// out = a · b (+ bias) for a handful of rows (generation: one row per stream). Such a product is
// bound by reading b (4 MiB for an LSTM(512)), so each thread streams its share of b's columns
// once, for every row at a time; BLAS runs a single-row product on one core. A pass adds four of b's
// rows into out, which makes a quarter of the passes over out (one row of an LSTM(512): 64 → 45 µs
// here; eight rows per pass measured slower, 44 against 40 µs).
constexpr int64_t kFewRows = 4;

template <typename T>
void few_rows_product(T* out, int64_t ldo, View<T> a, View<T> b, const T* bias, int64_t m, int64_t n, int64_t k) {
  at::parallel_for(0, n, 512, [&](int64_t begin, int64_t end) {
    for (int64_t r = 0; r < m; ++r) {
      T* o = out + r * ldo;
      if (bias) std::copy(bias + begin, bias + end, o + begin);
      else std::fill(o + begin, o + end, T(0));
    }
    int64_t i = 0;
    for (; i + 4 <= k; i += 4) {
      const T *__restrict__ b0 = b.data + i * b.row, *__restrict__ b1 = b0 + b.row, *__restrict__ b2 = b1 + b.row,
                              *__restrict__ b3 = b2 + b.row;
      for (int64_t r = 0; r < m; ++r) {
        const T* w = a.data + r * a.row + i * a.col;
        const T w0 = w[0], w1 = w[a.col], w2 = w[2 * a.col], w3 = w[3 * a.col];
        T* __restrict__ o = out + r * ldo;
#pragma omp simd
        for (int64_t j = begin; j < end; ++j) o[j] += w0 * b0[j] + w1 * b1[j] + w2 * b2[j] + w3 * b3[j];
      }
    }
    for (; i < k; ++i) {
      const T* __restrict__ row = b.data + i * b.row;
      for (int64_t r = 0; r < m; ++r) {
        const T weight = a.data[r * a.row + i * a.col];
        T* __restrict__ o = out + r * ldo;
#pragma omp simd
        for (int64_t j = begin; j < end; ++j) o[j] += weight * row[j];
      }
    }
  });
}

// Stacked matrices (D, rows, cols) as a pointer and strides, so a step takes a direction's matrix
// without creating a tensor.
template <typename T>
struct Stacked {
  T* data = nullptr;
  int64_t matrix = 0, row = 0, col = 0;
  Stacked() = default;
  explicit Stacked(const Tensor& t) {  // (D, rows, cols)
    if (t.defined()) data = const_cast<T*>(t.data_ptr<T>()), matrix = t.stride(0), row = t.stride(1), col = t.stride(2);
  }
  // Saved rows (contiguous, cols wide, laid out by `when.saved_row`) at one step: direction 1's
  // matrix lies wherever its step's rows are (`matrix` is the distance, maybe negative).
  Stacked(const Tensor& t, const Schedule& when, int64_t step)
      : data(t.data_ptr<T>() + when.saved_row(0, step, 0) * t.size(-1)),
        matrix((when.saved_row(when.D - 1, step, 0) - when.saved_row(0, step, 0)) * t.size(-1)),
        row(t.size(-1)), col(1) {}
  Stacked from_column(int64_t first) const { return {data + first * col, matrix, row, col}; }
  View<T> operator[](int64_t d) const { return {data + d * matrix, row, col}; }

 private:
  Stacked(T* data, int64_t matrix, int64_t row, int64_t col) : data(data), matrix(matrix), row(row), col(col) {}
};

// ------------------------------------------------------------------ oneDNN's packed products
// For a step's product of a few dozen rows by a kernel of a few MiB, oneDNN's linear with the kernel
// reordered once into its own blocked layout (`mkldnn::_linear_pointwise`, the op PyTorch's CPU
// compiler uses) runs at about twice BLAS' speed on the 2-core Zen 4 (64 × 512 by 512 × 2048: 750
// against 1,550 µs on two threads, 1,440 against 2,160 on one; docs/performance.md, run 7). For small
// products its fixed cost loses (32 × 64 by 64 × 256: 38 against 31 µs), hence a size threshold, the
// same for oneDNN's matmul below (21 against 12 µs there). It is also the fast way to bfloat16
// products (AVX512-BF16), which generation asks for.
constexpr int64_t kOneDnnMinimum = int64_t(1) << 22;  // rows × k × n multiply-adds

// Whether this CPU runs oneDNN's bfloat16 kernels (AVX512-BW/VL/DQ or AVX-NE-CONVERT; PyTorch's own
// check). PyTorch's oneDNN matmul refuses float32 too without them, and the packed layout refuses
// bfloat16; on such a CPU (an AVX2-only x86-64, say) every product goes to BLAS or at::mm instead.
bool onednn_bfloat16() {
  static const bool supported = [] {
    const auto check = c10::Dispatcher::singleton().findSchema({"mkldnn::_is_mkldnn_bf16_supported", ""});
    return check && check->typed<bool()>().call();
  }();
  return supported;
}

const c10::OperatorHandle* onednn_linear() {
  static const auto handle = c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
  return handle && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() ? &*handle : nullptr;
}

// b (k × n) prepared for a×b products of about `rows` rows: oneDNN's packed layout (bᵀ reordered) where
// oneDNN is present; else, for bfloat16, b itself (at::mm multiplies it), and for float32 undefined (BLAS).
Tensor pack(const Tensor& b, int64_t rows) {
  static const auto reorder = c10::Dispatcher::singleton().findSchema({"mkldnn::_reorder_linear_weight", ""});
  const bool low_precision = b.scalar_type() == at::kBFloat16;
  if (!onednn_linear() || !reorder || (low_precision && !onednn_bfloat16())) return low_precision ? b : Tensor();
  return reorder->typed<Tensor(const Tensor&, std::optional<int64_t>)>().call(b.t().contiguous(), rows);
}

// The directions' b[d] prepared by `pack` where it pays: bfloat16 kernels always; float32 ones when a
// step's product is big enough; an empty vector means BLAS for every direction.
template <typename T>
std::vector<Tensor> packed_kernels(const Tensor& b /* (D, k, n) */, int64_t rows) {
  const bool low_precision = b.scalar_type() == at::kBFloat16;
  if (!low_precision && !(std::is_same_v<T, float> && rows * b.size(1) * b.size(2) >= kOneDnnMinimum)) return {};
  std::vector<Tensor> packed;
  for (int64_t d = 0; d < b.size(0); ++d) packed.push_back(pack(b[d], rows));
  return packed[0].defined() ? packed : std::vector<Tensor>{};
}

// out (rows × n, row stride ldo) = a (rows × k, a view) · b, from b's `pack`; a is rounded to bfloat16
// for a bfloat16 b (the sums are float32 inside oneDNN; the result comes back rounded to bfloat16).
template <typename T>
void packed_product(T* out, int64_t ldo, View<T> a, const Tensor& packed, const T* bias, int64_t rows, int64_t n,
                    int64_t k) {
  const auto options = torch::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  Tensor x = torch::from_blob(const_cast<T*>(a.data), {rows, k}, {a.row, a.col}, options);
  if (packed.scalar_type() != x.scalar_type()) x = x.to(packed.scalar_type());
  Tensor product = packed.is_mkldnn()
      ? onednn_linear()->typed<Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&, c10::string_view,
                                      c10::List<std::optional<c10::Scalar>>, std::optional<c10::string_view>)>()
            .call(x.contiguous(), packed, std::nullopt, "none", c10::List<std::optional<c10::Scalar>>(), "")
      : at::mm(x, packed);
  Tensor o = torch::from_blob(out, {rows, n}, {ldo, 1}, options);
  o.copy_(product);
  if (bias) o.add_(torch::from_blob(const_cast<T*>(bias), {n}, options));
}

// out[d, :rows_d] = a[d, :rows_d] @ b[d] (+ bias[d]) for the directions d0 <= d < d1, each on the
// rows still running; b[d] is k × n, used through `packed` (from `packed_kernels`) unless that is
// empty; out and a have unit column stride, bias (if any) is (D, 1, n).
template <typename T>
void per_direction_product(const Stacked<T>& out, const Stacked<T>& a, const Stacked<T>& b,
                           const std::vector<Tensor>& packed, const Stacked<T>& bias, int64_t k, int64_t n,
                           const std::vector<int64_t>& rows, int64_t d0, int64_t d1) {
  for (int64_t d = d0; d < d1; ++d) {
    if (rows[d] == 0) continue;
    T* out_d = out.data + d * out.matrix;
    const T* bias_d = bias.data ? bias.data + d * bias.matrix : nullptr;
    if (!packed.empty()) packed_product(out_d, out.row, a[d], packed[d], bias_d, rows[d], n, k);
    else if (rows[d] <= kFewRows && b.col == 1) few_rows_product(out_d, out.row, a[d], b[d], bias_d, rows[d], n, k);
    else gemm(out_d, out.row, a[d], b[d], bias_d, rows[d], n, k);
  }
}

// Runs body(d0, d1) for the directions d0 <= d < d1 of the whole time loop. The two directions of a
// Bidirectional layer are independent, so with threads to spare each runs on its own thread, with
// no synchronization between steps (a step's small product shares poorly across threads); the ops
// inside then run single-threaded. The caller's thread-local state (grad and inference modes)
// goes with them.
template <typename F>
void over_directions(int64_t D, const F& body) {
  if (D > 1 && at::get_num_threads() > 1 && !at::in_parallel_region()) {
    const at::ThreadLocalState state;
    at::parallel_for(0, D, 1, [&](int64_t d0, int64_t d1) {
      at::ThreadLocalStateGuard guard(state);
      body(d0, d1);
    });
  } else {
    body(0, D);
  }
}

// ------------------------------------------------------------------ a training step's big products
// The products over all steps (the input projection and its two gradients, dU) are big: for config A,
// (2560 × 256) · (256 × 2048) and (512 × 2560) · (2560 × 2048). PyTorch sends float32 ones to MKL;
// oneDNN's matmul, `at::native::mkldnn_matmul` (the one PyTorch uses for bfloat16, with its
// default float32 precision), is 8-28% faster on them here and reads transposed views without a
// copy (docs/performance.md, run 9). PyTorch's headers do not declare it; the declaration is weak, so
// where a PyTorch build lacks it the extension still loads and products go to BLAS as before. It is
// used on x86-64 only, where it was measured.
}  // namespace
namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, float beta,
                             float alpha) __attribute__((weak));
}  // namespace at::native
namespace {

bool onednn_matmul() {
#if defined(__x86_64__)
  return at::native::mkldnn_matmul && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() &&
         onednn_bfloat16();
#else
  return false;
#endif
}

// out (m × n, contiguous) = a (m × k) · b (k × n) (+ out itself with `accumulate`); a and b with any strides.
void product_into(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0) && out.is_contiguous() &&
                  out.sizes() == at::IntArrayRef({a.size(0), b.size(1)}),
              "product_into: out (m, n) contiguous, a (m, k) and b (k, n)");
  const bool onednn = onednn_matmul() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
                      a.device().is_cpu() && a.size(0) * a.size(1) * b.size(1) >= kOneDnnMinimum;
  if (onednn) at::native::mkldnn_matmul(a, b, out, accumulate ? 1.0f : 0.0f, 1.0f);
  else if (accumulate) out.addmm_(a, b);
  else at::mm_out(const_cast<Tensor&>(out), a, b);
}

// product_into for each of the D directions: a[d] (m × k) · b[d] (k × n), stacked (D × m × n).
Tensor products_by_direction(const Tensor& a, const Tensor& b) {
  Tensor out = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());
  for (int64_t d = 0; d < a.size(0); ++d) product_into(out[d], a[d], b[d], false);
  return out;
}

// ------------------------------------------------------------------ forward
template <typename T>
std::vector<Tensor> forward_impl(int64_t cell, const Tensor& projected, const Tensor& xbias, const Tensor& U,
                                 const Tensor& rbias,
                                 const Tensor& peep, const Tensor& h0, const Tensor& c0, const Tensor& keep,
                                 const Tensor& rdrop, const Tensor& lengths, bool reverse_last, bool zero_output,
                                 bool sequence) {
  const int64_t B = h0.size(1), D = U.size(0), u = U.size(1), G = gates_of(cell);
  const int64_t T_ = lengths.defined() ? lengths.data_ptr<int64_t>()[0] : projected.size(1), width = G * u;
  const bool lstm = cell == kLSTM, masked = keep.defined() || lengths.defined();
  const Schedule when{T_, B, D, reverse_last, lengths.defined() ? lengths.data_ptr<int64_t>() : nullptr};
  TORCH_CHECK(projected.numel() == when.rows() * D * width,
              "the fused loop's projected inputs must be (D, T, B, W), or (D, N, W) for the real steps of a "
              "batch sorted by lengths");
  auto opts = projected.options();
  Tensor outputs = sequence ? torch::empty({B, T_, D, u}, opts) : Tensor();
  // Saved per step for backward: (D, T, B, .), or (D, N, .) with only the running rows (lengths).
  auto saved_shape = [&](int64_t cols) {
    return lengths.defined() ? std::vector<int64_t>{D, when.rows(), cols} : std::vector<int64_t>{D, T_, B, cols};
  };
  // The states live in the saved rows: step t reads h_{t-1} (and c_{t-1}) from its rows of h_prev (and
  // c_prev) and writes h_t, c_t into step t+1's, or, at a row's last step, into the final h, c. Rows
  // hold h0, c0 until they start (at step 0; a reversed direction's padded rows later).
  Tensor h_prev = torch::empty(saved_shape(u), opts);
  Tensor c_prev = lstm ? torch::empty_like(h_prev) : Tensor();
  Tensor gates = torch::empty(saved_shape(width), opts);
  Tensor extra = (lstm || cell == kGRUResetAfter) ? torch::empty_like(h_prev) : Tensor();
  Tensor h = h0.clone(), c = lstm ? c0.clone() : Tensor();
  Tensor hd = rdrop.defined() ? torch::empty_like(h) : Tensor();            // h * dropout mask
  Tensor rec = torch::empty({D, B, cell == kGRUResetBefore ? 2 * u : width}, opts);
  Tensor inner = cell == kGRUResetBefore ? torch::empty_like(h) : Tensor();
  Tensor r_hd = cell == kGRUResetBefore ? torch::zeros_like(h) : Tensor();
  Tensor last = sequence && masked ? torch::zeros_like(h) : Tensor();       // the last output (masking)
  const Tensor input_bias = xbias.defined() ? xbias : torch::zeros({D, width}, opts);
  Tensor U_zr = cell == kGRUResetBefore ? U.narrow(2, 0, 2 * u) : U;
  Tensor U_h = cell == kGRUResetBefore ? U.narrow(2, 2 * u, u) : Tensor();

  T *hp = ptr<T>(h), *cp = ptr<T>(c), *hdp = ptr<T>(hd), *lastp = ptr<T>(last), *recp = ptr<T>(rec);
  T *gates_p = ptr<T>(gates), *extra_p = ptr<T>(extra), *out_p = ptr<T>(outputs);
  T *h_prev_p = ptr<T>(h_prev), *c_prev_p = ptr<T>(c_prev), *r_hd_p = ptr<T>(r_hd);
  const T *x_p = ptr<T>(projected), *inner_p = ptr<T>(inner), *dropp = ptr<T>(rdrop), *peep_p = ptr<T>(peep);
  const T* xbias_p = ptr<T>(input_bias);
  const bool* keepp = keep.defined() ? keep.data_ptr<bool>() : nullptr;
  const int64_t rec_width = rec.size(2), grain = rows_per_task(width);
  const Stacked<T> rec_s(rec), hd_s(hd), rbias_s(rbias), inner_s(inner), r_hd_s(r_hd);
  const Stacked<T> U_zr_s(U_zr), U_h_s(U_h);
  const auto U_zr_packed = packed_kernels<T>(U_zr, B), U_h_packed = U_h.defined() ? packed_kernels<T>(U_h, B)
                                                                                   : std::vector<Tensor>{};
  auto saved = [&](int64_t d, int64_t t, int64_t b) { return when.saved_row(d, t, b); };
  std::vector<int64_t> running(D), running_next(D);
  // Where row n = (d, b) puts its states after step t: step t+1's saved rows, or the final states.
  auto next_state = [&](T* saved_states, T* final_states, int64_t d, int64_t t, int64_t b) {
    return b < running_next[d] ? saved_states + saved(d, t + 1, b) * u : final_states + (d * B + b) * u;
  };
  // Step t of the directions d0 <= d < d1, whose rows are n0 <= n < n1.
  auto step = [&](int64_t t, int64_t d0, int64_t d1) {
    const int64_t n0 = d0 * B, n1 = d1 * B;
    for (int64_t d = d0; d < d1; ++d) {
      running[d] = when.running(d, t);
      running_next[d] = t + 1 < T_ ? when.running(d, t + 1) : 0;
      const int64_t started = t == 0 ? 0 : std::min(running[d], when.running(d, t - 1));  // rows starting now
      std::copy(hp + (d * B + started) * u, hp + (d * B + running[d]) * u, h_prev_p + saved(d, t, started) * u);
      if (lstm) std::copy(cp + (d * B + started) * u, cp + (d * B + running[d]) * u, c_prev_p + saved(d, t, started) * u);
    }
    if (dropp) {
      for (int64_t d = d0; d < d1; ++d) {
        const T* h_rows = h_prev_p + saved(d, t, 0) * u;
        const int64_t first = d * B * u;
#pragma omp simd
        for (int64_t k = 0; k < running[d] * u; ++k) hdp[first + k] = h_rows[k] * dropp[first + k];
      }
    }
    per_direction_product(rec_s, dropp ? hd_s : Stacked<T>(h_prev, when, t), U_zr_s, U_zr_packed, rbias_s, u,
                          rec_width, running, d0, d1);
    at::parallel_for(n0, n1, grain, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const int64_t d = n / B, b = n % B;
        if (b >= running[d]) continue;  // finished: the mask below holds its state
        const int64_t s = saved(d, t, b);
        Row<T> row{x_p + s * width, xbias_p + d * width, recp + n * rec_width, gates_p + s * width,
                   extra_p ? extra_p + s * u : nullptr, h_prev_p + s * u, lstm ? c_prev_p + s * u : nullptr,
                   lstm ? next_state(c_prev_p, cp, d, t, b) : nullptr, next_state(h_prev_p, hp, d, t, b)};
        forward_row(cell, row, u, peep_p ? peep_p + d * 3 * u : nullptr, dropp ? hdp + n * u : row.h,
                    r_hd_p ? r_hd_p + n * u : nullptr);
      }
    });
    if (cell == kGRUResetBefore) {  // the candidate needs (r * h) W_hh: a second product
      per_direction_product(inner_s, r_hd_s, U_h_s, U_h_packed, {}, u, u, running, d0, d1);
      at::parallel_for(n0, n1, grain, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          const int64_t d = n / B, b = n % B;
          if (b >= running[d]) continue;
          const int64_t s = saved(d, t, b);
          Row<T> row{x_p + s * width, xbias_p + d * width, nullptr, gates_p + s * width,
                     nullptr, h_prev_p + s * u, nullptr, nullptr, next_state(h_prev_p, hp, d, t, b)};
          gru_candidate(row, inner_p + n * u, u, false);
        }
      });
    }
    // Keras' mask: a real step's new states and output stand; a masked one holds the states and repeats
    // the last output (or zeros).
    if (!sequence && !keepp) return;  // every running row's step is real, and no outputs to write
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t d = n / B, b = n % B, tau = when.time(d, t);
      const bool runs = b < running[d], real = runs && (!keepp || keepp[b * T_ + tau]);
      if (runs && !real) {  // computed, but masked: the states before the step carry on
        const int64_t s = saved(d, t, b);
        std::copy(h_prev_p + s * u, h_prev_p + (s + 1) * u, next_state(h_prev_p, hp, d, t, b));
        if (lstm) std::copy(c_prev_p + s * u, c_prev_p + (s + 1) * u, next_state(c_prev_p, cp, d, t, b));
      }
      if (!sequence) continue;
      T* out = out_p + ((b * T_ + tau) * D + d) * u;
      if (real) {
        const T* new_h = next_state(h_prev_p, hp, d, t, b);
        std::copy(new_h, new_h + u, out);
        if (masked) std::copy(new_h, new_h + u, lastp + n * u);
      } else if (zero_output) {
        std::fill(out, out + u, T(0));
      } else {
        std::copy(lastp + n * u, lastp + (n + 1) * u, out);
      }
    }
  };
  over_directions(D, [&](int64_t d0, int64_t d1) {
    for (int64_t t = 0; t < T_; ++t) step(t, d0, d1);
  });
  return {outputs, h, c, h_prev, c_prev, gates, extra};
}

}  // namespace

// ------------------------------------------------------------------ one step, for generation
// A cell's step without autograd, mask or dropout (generation, streaming). The recurrent kernel is
// prepared once (`pack`: oneDNN's layout where it pays, always for a bfloat16 kernel), and a call is
// the product and one elementwise pass, saving nothing for a backward pass.
//   Step(cell, U (u, W) in the inputs' dtype or bfloat16, rbias (1, W) | None, peep (3, u) | None, rows:
//   the batch size to tune the packing for); step(projected (B, W), h (B, u), c (B, u) | None) -> {h_t, c_t | None}
class Step {
 public:
  Step(int64_t cell, const Tensor& U, const std::optional<Tensor>& rbias, const std::optional<Tensor>& peep,
       int64_t rows)
      : cell_(cell), u_(U.size(0)), rbias_(given(rbias)), peep_(given(peep)) {
    TORCH_CHECK(U.dim() == 2 && U.size(1) == gates_of(cell) * u_, "Step: U must be (units, gates * units)");
    no_bias_ = torch::zeros({U.size(1)}, U.options().dtype(U.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
    if (rbias_.defined()) rbias_ = rbias_.unsqueeze(0);  // (1, 1, W), as the loop's (D, 1, W)
    const Tensor stacked = U.unsqueeze(0);               // (1, u, W), as the loop's (D, u, W)
    kernel_zr_ = (cell == kGRUResetBefore ? stacked.narrow(2, 0, 2 * u_) : stacked).contiguous();
    if (cell == kGRUResetBefore) kernel_h_ = stacked.narrow(2, 2 * u_, u_).contiguous();
    if (U.scalar_type() != at::kDouble) {  // float32 where it pays, bfloat16 always
      packed_zr_ = packed_kernels<float>(kernel_zr_, rows);
      if (kernel_h_.defined()) packed_h_ = packed_kernels<float>(kernel_h_, rows);
    }
  }

  std::vector<Tensor> operator()(const Tensor& projected, const Tensor& h, const std::optional<Tensor>& c) const {
    TORCH_CHECK(projected.device().is_cpu() && h.dim() == 2 && h.size(1) == u_ &&
                projected.sizes() == at::IntArrayRef({h.size(0), gates_of(cell_) * u_}),
                "Step: projected must be (batch, gates * units) and h (batch, units), on the CPU");
    TORCH_CHECK(kernel_zr_.scalar_type() == projected.scalar_type() ||
                (kernel_zr_.scalar_type() == at::kBFloat16 && projected.scalar_type() == at::kFloat),
                "Step: the inputs must have the kernel's dtype (float32 with a bfloat16 kernel)");
    return AT_DISPATCH_FLOATING_TYPES(projected.scalar_type(), "fused_step", [&] {
      return run<scalar_t>(projected.contiguous(), h.contiguous(), given(c));
    });
  }

 private:
  template <typename T>
  std::vector<Tensor> run(const Tensor& projected, const Tensor& h, const Tensor& c) const {
    const int64_t B = h.size(0), u = u_, width = gates_of(cell_) * u;
    const bool lstm = cell_ == kLSTM, reset_before = cell_ == kGRUResetBefore;
    auto opts = projected.options();
    Tensor rec = torch::empty({1, B, kernel_zr_.size(2)}, opts), gates = torch::empty({B, width}, opts);
    Tensor extra = lstm || cell_ == kGRUResetAfter ? torch::empty({B, u}, opts) : Tensor();
    Tensor new_h = torch::empty({B, u}, opts), new_c = lstm ? torch::empty({B, u}, opts) : Tensor();
    Tensor r_h = reset_before ? torch::empty({1, B, u}, opts) : Tensor();
    Tensor inner = reset_before ? torch::empty({1, B, u}, opts) : Tensor();
    const bool plain = kernel_zr_.scalar_type() == projected.scalar_type();  // else only through `packed`
    const std::vector<int64_t> rows{B};
    per_direction_product(Stacked<T>(rec), Stacked<T>(h.unsqueeze(0)), plain ? Stacked<T>(kernel_zr_) : Stacked<T>(),
                          packed_zr_, Stacked<T>(rbias_), u, rec.size(2), rows, 0, 1);
    const T *x = ptr<T>(projected), *hp = ptr<T>(h), *cp = ptr<T>(c), *peep = ptr<T>(peep_), *inner_p = ptr<T>(inner);
    const T* no_bias = ptr<T>(no_bias_);  // the projected inputs include b_x
    T *recp = ptr<T>(rec), *gates_p = ptr<T>(gates), *extra_p = ptr<T>(extra), *new_h_p = ptr<T>(new_h);
    T *new_c_p = ptr<T>(new_c), *r_h_p = ptr<T>(r_h);
    const int64_t rec_width = rec.size(2), grain = rows_per_task(width);
    auto row = [&](int64_t b) {
      return Row<T>{x + b * width, no_bias, recp + b * rec_width, gates_p + b * width, extra_p ? extra_p + b * u : nullptr,
                    hp + b * u, lstm ? cp + b * u : nullptr, lstm ? new_c_p + b * u : nullptr, new_h_p + b * u};
    };
    at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b)
        forward_row(cell_, row(b), u, peep, hp + b * u, reset_before ? r_h_p + b * u : nullptr);
    });
    if (reset_before) {  // the candidate needs (r * h) W_hh: a second product
      per_direction_product(Stacked<T>(inner), Stacked<T>(r_h), plain ? Stacked<T>(kernel_h_) : Stacked<T>(),
                            packed_h_, {}, u, u, rows, 0, 1);
      at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) gru_candidate(row(b), inner_p + b * u, u, false);
      });
    }
    return {new_h, new_c};
  }

  int64_t cell_, u_;
  Tensor rbias_, peep_, kernel_zr_, kernel_h_;    // rbias (1, 1, W), kernels (1, u, .): the loop's layouts
  Tensor no_bias_;                                // (W,) zeros: a Row's input bias
  std::vector<Tensor> packed_zr_, packed_h_;      // from packed_kernels; empty: BLAS
};

namespace {

// ------------------------------------------------------------------ backward
template <typename T>
std::vector<Tensor> backward_impl(int64_t cell, const Tensor& grad_outputs, const Tensor& grad_h,
                                  const Tensor& grad_c, const Tensor& U, const Tensor& peep, const Tensor& keep,
                                  const Tensor& rdrop,
                                  const Tensor& lengths, bool reverse_last, bool zero_output, const Tensor& h_prev,
                                  const Tensor& c_prev, const Tensor& gates, const Tensor& extra) {
  const int64_t D = U.size(0), u = U.size(1), G = gates_of(cell);
  const int64_t T_ = lengths.defined() ? lengths.data_ptr<int64_t>()[0] : gates.size(1);
  const int64_t B = lengths.defined() ? lengths.size(0) : gates.size(2);
  const int64_t width = G * u;
  const bool lstm = cell == kLSTM;
  const Schedule when{T_, B, D, reverse_last, lengths.defined() ? lengths.data_ptr<int64_t>() : nullptr};
  auto opts = gates.options();
  Tensor gh = grad_h.defined() ? grad_h.clone() : torch::zeros({D, B, u}, opts);
  Tensor gc = lstm ? (grad_c.defined() ? grad_c.clone() : torch::zeros({D, B, u}, opts)) : Tensor();
  Tensor held = torch::zeros({D, B, u}, opts);      // gradient reaching an output a masked step repeated
  Tensor carry = torch::empty({D, B, u}, opts);     // gradient to h_{t-1} that bypasses the product
  Tensor g_hd = torch::empty({D, B, u}, opts);      // gradient to h_{t-1} * m through the product
  // Pre-activation gradients, laid out as `gates`, hence as `projected`: they are its gradient.
  Tensor dz = torch::empty_like(gates);
  // What multiplies U in the step: equal to dz except for the reset_after GRU's candidate columns.
  Tensor dr = cell != kGRUResetAfter ? dz : torch::empty_like(gates);
  Tensor g_rh = cell == kGRUResetBefore ? torch::empty({D, B, u}, opts) : Tensor();
  Tensor Ut = U.transpose(1, 2);
  Tensor U_zr_t = cell == kGRUResetBefore ? U.narrow(2, 0, 2 * u).transpose(1, 2) : Tensor();
  Tensor U_h_t = cell == kGRUResetBefore ? U.narrow(2, 2 * u, u).transpose(1, 2) : Tensor();
  const Stacked<T> g_rh_s(g_rh), g_hd_s(g_hd), Ut_s(Ut), U_zr_t_s(U_zr_t), U_h_t_s(U_h_t);
  const bool reset_before = cell == kGRUResetBefore;
  const auto Ut_packed = reset_before ? std::vector<Tensor>{} : packed_kernels<T>(Ut, B);
  const auto U_zr_t_packed = reset_before ? packed_kernels<T>(U_zr_t, B) : std::vector<Tensor>{};
  const auto U_h_t_packed = reset_before ? packed_kernels<T>(U_h_t, B) : std::vector<Tensor>{};
  const Tensor no_output_grad = torch::zeros({u}, opts);  // a step's output gradient where none came
  Tensor bias_sum = torch::zeros({D, width}, opts.dtype(at::kDouble));  // Σ dz over rows, in float64
  double* bias_sum_p = bias_sum.data_ptr<double>();

  T *ghp = ptr<T>(gh), *gcp = ptr<T>(gc), *heldp = ptr<T>(held), *carryp = ptr<T>(carry), *ghdp = ptr<T>(g_hd);
  T *dz_p = ptr<T>(dz), *dr_p = ptr<T>(dr);
  const T *gop = ptr<T>(grad_outputs), *no_go = ptr<T>(no_output_grad), *dropp = ptr<T>(rdrop);
  const T *gates_p = ptr<T>(gates), *extra_p = ptr<T>(extra);
  const T *h_prev_p = ptr<T>(h_prev), *c_prev_p = ptr<T>(c_prev), *peep_p = ptr<T>(peep);
  const bool* keepp = keep.defined() ? keep.data_ptr<bool>() : nullptr;
  const int64_t grain = rows_per_task(width);
  // The recurrent dropout keep-mask, ones without dropout: the vectorized loops multiply by it
  // rather than branch on a null pointer (a masked load through it takes a microcode assist).
  const Tensor ones = dropp ? Tensor() : torch::ones({D, B, u}, opts);
  const T* keep_scale = dropp ? dropp : ptr<T>(ones);
  auto saved = [&](int64_t d, int64_t t, int64_t b) { return when.saved_row(d, t, b); };
  std::vector<int64_t> running(D);
  // Step t, backwards, of the directions d0 <= d < d1, whose rows are n0 <= n < n1.
  auto step = [&](int64_t t, int64_t d0, int64_t d1) {
    const int64_t n0 = d0 * B, n1 = d1 * B;
    for (int64_t d = d0; d < d1; ++d) running[d] = when.running(d, t);
    at::parallel_for(n0, n1, grain, [&](int64_t begin, int64_t end) {
      std::vector<T> g_new_h(u), g_new_c(u);  // gradients to the step's new h and c
      for (int64_t n = begin; n < end; ++n) {
        const int64_t d = n / B, b = n % B, tau = when.time(d, t), o = n * u, s = saved(d, t, b);
        const bool runs = b < running[d], real = runs && (!keepp || keepp[b * T_ + tau]);
        T *ghr = ghp + o, *heldr = heldp + o, *carryr = carryp + o;
        // Through the mask: a real step passes the output's and the state's gradients to the new
        // state; a masked one passes them on to the held state and the repeated output.
        const T* go = gop ? gop + ((b * T_ + tau) * D + d) * u : no_go;
        if (real) {
#pragma omp simd
          for (int64_t j = 0; j < u; ++j) {
            g_new_h[j] = go[j] + heldr[j] + ghr[j];
            carryr[j] = heldr[j] = T(0);
          }
          if (lstm) for (int64_t j = 0; j < u; ++j) g_new_c[j] = gcp[o + j], gcp[o + j] = T(0);
        } else {
#pragma omp simd
          for (int64_t j = 0; j < u; ++j) {
            carryr[j] = ghr[j];
            heldr[j] = zero_output ? T(0) : go[j] + heldr[j];
            g_new_h[j] = T(0);
          }
          if (lstm) std::fill(g_new_c.begin(), g_new_c.end(), T(0));
        }
        if (!runs) continue;  // a finished row: no gradient enters this step's equation
        const T* g = gates_p + s * width;
        T* z_grad = dz_p + s * width;
        const T* hp = h_prev_p + s * u;
        if (cell == kSimpleTanh || cell == kSimpleRelu) {
#pragma omp simd
          for (int64_t j = 0; j < u; ++j)
            z_grad[j] = cell == kSimpleTanh ? g_new_h[j] * (T(1) - g[j] * g[j])
                                            : (g[j] <= T(0) ? T(0) : g_new_h[j]);  // NaN passes, as in PyTorch
        } else if (lstm) {
          const T* tc = extra_p + s * u;
          const T* cp = c_prev_p + s * u;
          // Peepholes: o sees c_t, i and f see c_{t-1}. The branch is outside the vectorized loop:
          // a loop that reads `p ? p[j] : 0` with p null takes a microcode assist per masked load.
          auto lstm_grad = [&](auto peepholes) {
            constexpr bool with_peep = decltype(peepholes)::value;
            const T* p = peep_p + (with_peep ? d * 3 * u : 0);
#pragma omp simd
            for (int64_t j = 0; j < u; ++j) {
              const T i = g[j], f = g[u + j], cand = g[2 * u + j], o_ = g[3 * u + j];
              const T d_o = g_new_h[j] * tc[j] * o_ * (T(1) - o_);
              T g_c = g_new_c[j] + g_new_h[j] * o_ * (T(1) - tc[j] * tc[j]);  // total gradient to c_t
              if constexpr (with_peep) g_c += d_o * p[2 * u + j];
              const T d_i = g_c * cand * i * (T(1) - i), d_f = g_c * cp[j] * f * (T(1) - f);
              z_grad[j] = d_i;
              z_grad[u + j] = d_f;
              z_grad[2 * u + j] = g_c * i * (T(1) - cand * cand);
              z_grad[3 * u + j] = d_o;
              // gradient to c_{t-1} (plus what a masked step held)
              if constexpr (with_peep) gcp[o + j] += g_c * f + (d_i * p[j] + d_f * p[u + j]);
              else gcp[o + j] += g_c * f;
            }
          };
          if (peep_p) lstm_grad(std::true_type{});
          else lstm_grad(std::false_type{});
        } else {  // GRU: h_t = h~ + z * (h_{t-1} - h~)
#pragma omp simd
          for (int64_t j = 0; j < u; ++j) {
            const T z = g[j], cand = g[2 * u + j];
            z_grad[j] = g_new_h[j] * (hp[j] - cand) * z * (T(1) - z);
            z_grad[2 * u + j] = g_new_h[j] * (T(1) - z) * (T(1) - cand * cand);
            carryr[j] += g_new_h[j] * z;
          }
          if (cell == kGRUResetAfter) {
            const T* inner = extra_p + s * u;
            T* r_grad = dr_p + s * width;
#pragma omp simd
            for (int64_t j = 0; j < u; ++j) {
              const T r = g[u + j], d_cand = z_grad[2 * u + j];
              z_grad[u + j] = d_cand * inner[j] * r * (T(1) - r);
              r_grad[j] = z_grad[j], r_grad[u + j] = z_grad[u + j], r_grad[2 * u + j] = d_cand * r;
            }
          }
        }
      }
    });
    const Stacked<T> dz_t(dz, when, t);  // (D, running rows, W)
    if (cell == kGRUResetBefore) {  // the reset gate's gradient needs the product's: (r * hd) W_hh
      per_direction_product(g_rh_s, dz_t.from_column(2 * u), U_h_t_s, U_h_t_packed, {}, u, u, running, d0, d1);
      const T* grh = ptr<T>(g_rh);
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t d = n / B, b = n % B, o = n * u, s = saved(d, t, b);
        if (b >= running[d]) continue;
        const T* g = gates_p + s * width;
        T* z_grad = dz_p + s * width;
        const T* hp = h_prev_p + s * u;
#pragma omp simd
        for (int64_t j = 0; j < u; ++j) {
          const T r = g[u + j], hd = hp[j] * keep_scale[o + j];
          z_grad[u + j] = grh[o + j] * hd * r * (T(1) - r);
        }
      }
      per_direction_product(g_hd_s, dz_t, U_zr_t_s, U_zr_t_packed, {}, 2 * u, u, running, d0, d1);
      for (int64_t n = n0; n < n1; ++n) {  // plus the path through r * hd
        const int64_t d = n / B, b = n % B;
        if (b >= running[d]) continue;
        const T* r = gates_p + saved(d, t, b) * width + u;
#pragma omp simd
        for (int64_t j = 0; j < u; ++j) ghdp[n * u + j] += grh[n * u + j] * r[j];
      }
    } else {
      per_direction_product(g_hd_s, cell == kGRUResetAfter ? Stacked<T>(dr, when, t) : dz_t, Ut_s, Ut_packed, {}, width, u,
                            running, d0, d1);
    }
    for (int64_t d = d0; d < d1; ++d) {  // b_x's gradient: the step's pre-activation gradients, summed over rows
      double* __restrict__ sum = bias_sum_p + d * width;
      for (int64_t b = 0; b < running[d]; ++b) {
        const T* __restrict__ row = dz_p + saved(d, t, b) * width;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) sum[j] += row[j];
      }
    }
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t d = n / B, b = n % B, o = n * u;
      if (b < running[d]) {
#pragma omp simd
        for (int64_t j = 0; j < u; ++j) ghp[o + j] = carryp[o + j] + ghdp[o + j] * keep_scale[o + j];
      } else {  // a finished row has no real step here
        std::copy(carryp + o, carryp + o + u, ghp + o);
      }
    }
  };
  over_directions(D, [&](int64_t d0, int64_t d1) {
    for (int64_t t = T_ - 1; t >= 0; --t) step(t, d0, d1);
  });

  // The recurrent kernel's gradient, one product over all saved rows: dU[d] = Σ_t hd_{t-1}ᵀ · dz_t.
  auto rows_of = [D](const Tensor& x) { return x.reshape({D, -1, x.size(-1)}); };  // (D, saved rows, .) views
  const Tensor h_rows = rows_of(h_prev), gate_rows = rows_of(gates), dz_rows = rows_of(dz);
  Tensor hd_all = h_rows;
  if (rdrop.defined()) {  // each saved row times its sample's recurrent dropout mask
    const Tensor samples = when.sample_of_saved_rows().unsqueeze(2).expand({D, -1, u});
    hd_all = h_rows * rdrop.gather(1, samples);
  }
  Tensor grad_U;
  if (cell == kGRUResetBefore) {
    Tensor r_hd = gate_rows.narrow(2, u, u) * hd_all;
    grad_U = torch::cat({products_by_direction(hd_all.transpose(1, 2), dz_rows.narrow(2, 0, 2 * u)),
                         products_by_direction(r_hd.transpose(1, 2), dz_rows.narrow(2, 2 * u, u))}, 2);
  } else {
    grad_U = products_by_direction(hd_all.transpose(1, 2), rows_of(dr));
  }
  Tensor grad_rbias = cell == kGRUResetAfter ? rows_of(dr).sum(1).unsqueeze(1) : Tensor();
  Tensor grad_peep;
  if (peep.defined()) {  // Σ over steps and rows: dz_i c_{t-1}, dz_f c_{t-1}, dz_o c_t
    const Tensor c_rows = rows_of(c_prev);
    Tensor c_t = gate_rows.narrow(2, u, u) * c_rows + gate_rows.narrow(2, 0, u) * gate_rows.narrow(2, 2 * u, u);
    grad_peep = torch::stack({(dz_rows.narrow(2, 0, u) * c_rows).sum(1), (dz_rows.narrow(2, u, u) * c_rows).sum(1),
                              (dz_rows.narrow(2, 3 * u, u) * c_t).sum(1)}, 1);
  }
  // dz has `projected`'s shape; b_x adds to every row of it, so b_x's gradient is dz summed over rows
  return {dz, bias_sum.to(gates.scalar_type()), grad_U, grad_rbias, gh, gc, grad_peep};
}

}  // namespace

// Returns {outputs (B,T,D,u) | None (without `sequence`), h_T (D,B,u), c_T | None, and what backward
// needs, with the rows of `projected` (D,T,B,.): h_prev, c_prev | None, gates (activated: SimpleRNN h; LSTM i f c~ o; GRU z r h~),
// extra | None (tanh(c_t) for the LSTM, h_{t-1} W_hh + b_hh for the reset_after GRU)}.
std::vector<Tensor> forward(int64_t cell, const Tensor& projected, const std::optional<Tensor>& xbias, const Tensor& U,
                            const std::optional<Tensor>& rbias, const std::optional<Tensor>& peep,
                            const Tensor& h0, const std::optional<Tensor>& c0,
                            const std::optional<Tensor>& keep, const std::optional<Tensor>& rdrop,
                            const std::optional<Tensor>& lengths, bool reverse_last, bool zero_output,
                            bool sequence) {
  TORCH_CHECK(projected.device().is_cpu(), "the fused loop runs on CPU tensors");
  TORCH_CHECK(U.scalar_type() == projected.scalar_type(), "the fused loop needs U in the inputs' dtype");
  return AT_DISPATCH_FLOATING_TYPES(projected.scalar_type(), "fused_forward", [&] {
    return forward_impl<scalar_t>(cell, projected.contiguous(), given(xbias), U.contiguous(), given(rbias), given(peep),
                                  h0.contiguous(),
                                  given(c0), given(keep), given(rdrop), given(lengths), reverse_last, zero_output,
                                  sequence);
  });
}

// Gradients {projected (D,T,B,W) or packed (D,N,W), xbias (D,W), U, rbias | None, h0, c0 | None, peep | None}
// from those of outputs, h_T, c_T (None = zero).
std::vector<Tensor> backward(int64_t cell, const std::optional<Tensor>& grad_outputs,
                             const std::optional<Tensor>& grad_h, const std::optional<Tensor>& grad_c,
                             const Tensor& U, const std::optional<Tensor>& peep, const std::optional<Tensor>& keep,
                             const std::optional<Tensor>& rdrop, const std::optional<Tensor>& lengths,
                             bool reverse_last, bool zero_output,
                             const Tensor& h_prev, const std::optional<Tensor>& c_prev, const Tensor& gates,
                             const std::optional<Tensor>& extra) {
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "fused_backward", [&] {
    return backward_impl<scalar_t>(cell, given(grad_outputs), given(grad_h), given(grad_c), U.contiguous(),
                                   given(peep), given(keep), given(rdrop), given(lengths), reverse_last, zero_output, h_prev,
                                   given(c_prev), gates, given(extra));
  });
}

// sampling.cpp
Tensor draw(const Tensor& probabilities, const Tensor& uniform);
std::vector<double> train_word2vec(const Tensor& corpus, const Tensor& sentence_starts, const Tensor& keep,
                                   const Tensor& noise, Tensor input, Tensor output,
                                   const std::optional<Tensor>& row_starts, const std::optional<Tensor>& rows,
                                   bool skipgram, int64_t window, int64_t negative, bool cbow_mean,
                                   double alpha_begin, double alpha_end, int64_t seed, int64_t threads,
                                   bool compute_loss);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "recurrent time loop, forward");
  m.def("backward", &backward, "recurrent time loop, backward");
  m.def("product_into", &product_into,
        "out = a @ b (+ out with accumulate): oneDNN's matmul for big float32 products, else BLAS",
        pybind11::arg("out"), pybind11::arg("a"), pybind11::arg("b"), pybind11::arg("accumulate") = false);
  m.def("products_use_onednn", &onednn_matmul,
        "whether `product_into` sends big float32 products to oneDNN's matmul (found in libtorch_cpu, oneDNN enabled)");
  pybind11::class_<Step>(m, "Step")
      .def(pybind11::init<int64_t, const Tensor&, const std::optional<Tensor>&, const std::optional<Tensor>&,
                          int64_t>())
      .def("__call__", &Step::operator(), "one step: (projected, h, c | None) -> [h_t, c_t | None]");
  m.def("draw", &draw, "one index per row of probabilities (B, V), at float64 uniforms u (B,): "
        "the first i whose running sum exceeds u times the row's total");
  m.def("train_word2vec", &train_word2vec,
        "one Hogwild pass of skip-gram or CBOW with negative sampling over sentences (csrc/word2vec.cpp); "
        "returns [loss, targets, kept words, words]");
  m.def("uses_packed_product", [](int64_t rows, int64_t k, int64_t n) {
    return !packed_kernels<float>(torch::zeros({1, k, n}), rows).empty();
  }, "whether a float32 product of (rows, k) by (k, n) in the loop runs on oneDNN's packed kernel");
}
