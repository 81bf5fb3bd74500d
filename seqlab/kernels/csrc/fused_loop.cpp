// The recurrent time loop in C++: forward and a hand-written backward.
//
// The same equations as `reference_loop` (seqlab/layers/recurrent.py) and the
// cells' `step` (seqlab/layers/cells.py), for SimpleRNN (tanh or relu), LSTM
// (tanh/sigmoid, with or without peepholes) and GRU (tanh/sigmoid, reset_after
// true or false), with D stacked directions (1, or 2 for a Bidirectional layer, whose
// second direction reads time backwards; with two threads each direction runs
// its whole loop on its own). Each step is one BLAS product for the recurrent
// half, h_{t-1} U, and one vectorized pass over the elements that applies the
// gates and Keras' mask and saves what the backward pass needs. The backward
// pass is written out (no autograd graph); the recurrent kernel's gradient is
// one product over all steps, dU[d] = Σ_t (h_{t-1} * m)ᵀ dz_t.
//
// Shapes (T time, B batch, D directions, u units, G gates: 1, 4, 3; W = G*u):
//   projected  (T, B, D, W)   x_t W_x + b_x in input time order (what `x @ [W_fwd | W_bwd]` gives)
//   U          (D, u, W)      recurrent kernels, Keras' layout and gate order (i f c o / z r h)
//   rbias      (D, 1, W)      GRU reset_after=true: the recurrent bias (None otherwise)
//   peep       (D, 3, u)      LSTM peephole weights p_i, p_f, p_o (None: no peepholes)
//   h0, c0     (D, B, u)      initial states (c0 only for the LSTM)
//   keep       (B, T)         bool, true at real steps, input time order (None: no mask)
//   rdrop      (D, B, u)      recurrent dropout keep-mask, already scaled (None: no dropout)
//   lengths    (B,) int64     for right-padded batches sorted longest first: each step then
//                             computes only the rows that are still running (None: every row,
//                             every step); the saving grows with the batch (docs/performance.md)
//   outputs    (B, T, D, u)   in input time order: for D = 2 this is Bidirectional's concat
// Direction D-1 runs backwards in time when reverse_last is set. At a masked
// step the states are held and the output repeats the previous output (zeros
// with zero_output), as in Keras. Internally the saved per-step tensors are
// (D, T, B, .) in processing order, so the gradient products over time are views.

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
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
// exp for float32 that the compiler vectorizes (Cephes' expf: range reduction
// to [-ln2/2, ln2/2], degree-6 polynomial, scale by 2^k; relative error ~2e-7).
// NaN propagates. float64 uses std::exp.
inline float exp_fast(float x) {
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

template <typename T> inline T sigmoid(T x) { return T(1) / (T(1) + exp_fast(-x)); }

// tanh for float32, vectorizable: Cephes' tanhf polynomial for |x| < 0.625 (where 1 - 2/(e^2x + 1)
// would cancel the leading digits), else 1 - 2/(e^2x + 1); relative error ~2e-7. float64: std::tanh.
inline float tanh_of(float x) {
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
// A row is one (direction, sample) pair at one step: `x` its projected input,
// `rec` its recurrent product h_{t-1} U (+ the GRU's recurrent bias), `h` its
// state before the step, `c` a copy of its cell state that becomes c_t,
// `gates` where the activated gates are saved, `new_h` the step's new h.
// The pointers never overlap (`__restrict__`), which lets the compiler vectorize.
template <typename T>
struct Row {
  const T* __restrict__ x;
  const T* __restrict__ rec;
  T* __restrict__ gates;
  T* __restrict__ extra;   // LSTM: tanh(c_t); GRU reset_after: h_{t-1} W_hh + b_hh
  const T* __restrict__ h;
  T* __restrict__ c;
  T* __restrict__ new_h;
};

template <typename T>
inline void simple_forward(const Row<T>& row, int64_t u, bool relu) {
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T a = row.x[j] + row.rec[j];
    const T h = relu ? std::max(a, T(0)) : tanh_of(a);
    row.gates[j] = h;
    row.new_h[j] = h;
  }
}

// With peepholes `peep` = (p_i, p_f, p_o), each (u,): i and f add p * c_{t-1}, o adds p_o * c_t.
template <typename T>
inline void lstm_forward(const Row<T>& row, int64_t u, const T* __restrict__ peep) {
  const T* __restrict__ x = row.x;
  const T* __restrict__ rec = row.rec;
  T* __restrict__ gates = row.gates;
  T* __restrict__ cell = row.c;  // c_{t-1} in, c_t out
  if (peep) {
#pragma omp simd
    for (int64_t j = 0; j < u; ++j) {
      gates[j] = sigmoid(x[j] + rec[j] + peep[j] * cell[j]);                                   // i
      gates[u + j] = sigmoid(x[u + j] + rec[u + j] + peep[u + j] * cell[j]);                   // f
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < 2 * u; ++j) gates[j] = sigmoid(x[j] + rec[j]);                   // i, f
  }
#pragma omp simd
  for (int64_t j = 2 * u; j < 3 * u; ++j) gates[j] = tanh_of(x[j] + rec[j]);                 // c~
  if (!peep) {
#pragma omp simd
    for (int64_t j = 3 * u; j < 4 * u; ++j) gates[j] = sigmoid(x[j] + rec[j]);               // o
  }
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) cell[j] = gates[u + j] * cell[j] + gates[j] * gates[2 * u + j];  // f*c + i*c~
  if (peep) {
#pragma omp simd
    for (int64_t j = 0; j < u; ++j)
      gates[3 * u + j] = sigmoid(x[3 * u + j] + rec[3 * u + j] + peep[2 * u + j] * cell[j]);  // o sees c_t
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
  for (int64_t j = 0; j < 2 * u; ++j) row.gates[j] = sigmoid(row.x[j] + row.rec[j]);
}

// GRU, second half: h~ from its pre-activation's recurrent part `inner`, then h_t.
//   reset_after:  h~ = tanh(x_h + r * inner), inner = h W_hh + b_hh
//   reset_before: h~ = tanh(x_h + inner),     inner = (r * h) W_hh
template <typename T>
inline void gru_candidate(const Row<T>& row, const T* inner, int64_t u, bool reset_after) {
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T z = row.gates[j], r = row.gates[u + j];
    const T cand = tanh_of(row.x[2 * u + j] + (reset_after ? r * inner[j] : inner[j]));
    row.gates[2 * u + j] = cand;
    row.new_h[j] = z * row.h[j] + (T(1) - z) * cand;  // the cell's own order of operations
  }
  if (reset_after) std::copy(inner, inner + u, row.extra);  // outside the loop: extra is null otherwise
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
  const int64_t* lengths;  // sorted longest first, or nullptr

  int64_t time(int64_t d, int64_t t) const { return reverse_last && d == D - 1 ? T - 1 - t : t; }
  int64_t running(int64_t d, int64_t t) const {
    if (!lengths) return B;
    const int64_t tau = time(d, t);
    int64_t rows = 0;
    while (rows < B && lengths[rows] > tau) ++rows;
    return rows;
  }
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
// once, for every row at a time; BLAS runs a single-row product on one core.
constexpr int64_t kFewRows = 4;

template <typename T>
void few_rows_product(T* out, int64_t ldo, View<T> a, View<T> b, const T* bias, int64_t m, int64_t n, int64_t k) {
  at::parallel_for(0, n, 512, [&](int64_t begin, int64_t end) {
    for (int64_t r = 0; r < m; ++r) {
      T* o = out + r * ldo;
      if (bias) std::copy(bias + begin, bias + end, o + begin);
      else std::fill(o + begin, o + end, T(0));
    }
    for (int64_t i = 0; i < k; ++i) {
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
  Stacked(const Tensor& t, int64_t step)  // (D, T, rows, cols) at one step
      : data(t.data_ptr<T>() + step * t.stride(1)), matrix(t.stride(0)), row(t.stride(2)), col(t.stride(3)) {}
  Stacked from_column(int64_t first) const { return {data + first * col, matrix, row, col}; }
  View<T> operator[](int64_t d) const { return {data + d * matrix, row, col}; }

 private:
  Stacked(T* data, int64_t matrix, int64_t row, int64_t col) : data(data), matrix(matrix), row(row), col(col) {}
};

// out[d, :rows_d] = a[d, :rows_d] @ b[d] (+ bias[d]) for the directions d0 <= d < d1, each on the
// rows still running; b[d] is k × n, out and a have unit column stride, bias (if any) is (D, 1, n).
template <typename T>
void per_direction_product(const Stacked<T>& out, const Stacked<T>& a, const Stacked<T>& b, const Stacked<T>& bias,
                           int64_t k, int64_t n, const std::vector<int64_t>& rows, int64_t d0, int64_t d1) {
  for (int64_t d = d0; d < d1; ++d) {
    T* out_d = out.data + d * out.matrix;
    const T* bias_d = bias.data ? bias.data + d * bias.matrix : nullptr;
    if (rows[d] <= kFewRows && b.col == 1) few_rows_product(out_d, out.row, a[d], b[d], bias_d, rows[d], n, k);
    else gemm(out_d, out.row, a[d], b[d], bias_d, rows[d], n, k);
  }
}

// per_direction_product for kernels b in bfloat16 (generation, `Stepper(precision="bfloat16")`): a is
// rounded to bfloat16 and PyTorch's bfloat16 matmul (oneDNN: float32 sums, a bfloat16 result) multiplies;
// out (D, B, n), a (D, B, k), b (D, k, n), bias (D, 1, n) or undefined.
void bfloat16_product(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias,
                      const std::vector<int64_t>& rows, int64_t d0, int64_t d1) {
  for (int64_t d = d0; d < d1; ++d) {
    if (rows[d] == 0) continue;
    Tensor o = out[d].narrow(0, 0, rows[d]);
    o.copy_(at::mm(a[d].narrow(0, 0, rows[d]).to(at::kBFloat16), b[d]));
    if (bias.defined()) o.add_(bias[d]);
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

// ------------------------------------------------------------------ forward
template <typename T>
std::vector<Tensor> forward_impl(int64_t cell, const Tensor& projected, const Tensor& U, const Tensor& rbias,
                                 const Tensor& peep, const Tensor& h0, const Tensor& c0, const Tensor& keep,
                                 const Tensor& rdrop, const Tensor& lengths, bool reverse_last, bool zero_output) {
  const int64_t T_ = projected.size(0), B = projected.size(1), D = U.size(0), u = U.size(1), G = gates_of(cell);
  const int64_t width = G * u;
  const bool lstm = cell == kLSTM, masked = keep.defined() || lengths.defined();
  const bool low_precision = U.scalar_type() == at::kBFloat16;  // generation: bfloat16_product
  TORCH_CHECK(!low_precision || (std::is_same_v<T, float>), "bfloat16 recurrent kernels need float32 inputs");
  const Schedule when{T_, B, D, reverse_last, lengths.defined() ? lengths.data_ptr<int64_t>() : nullptr};
  auto opts = projected.options();
  Tensor outputs = torch::empty({B, T_, D, u}, opts);
  Tensor h_prev = torch::empty({D, T_, B, u}, opts);
  Tensor c_prev = lstm ? torch::empty_like(h_prev) : Tensor();
  // Rows a step skips keep zeros here: the backward pass multiplies them by zero gradients.
  Tensor gates = lengths.defined() ? torch::zeros({D, T_, B, width}, opts) : torch::empty({D, T_, B, width}, opts);
  Tensor extra = (lstm || cell == kGRUResetAfter) ? torch::empty_like(h_prev) : Tensor();
  Tensor h = h0.clone(), c = lstm ? c0.clone() : Tensor();
  Tensor hd = rdrop.defined() ? torch::empty_like(h) : h;                  // h * dropout mask
  Tensor rec = torch::empty({D, B, cell == kGRUResetBefore ? 2 * u : width}, opts);
  Tensor inner = cell == kGRUResetBefore ? torch::empty_like(h) : Tensor();
  Tensor r_hd = cell == kGRUResetBefore ? torch::zeros_like(h) : Tensor();
  Tensor new_h = torch::empty_like(h), new_c = lstm ? torch::empty_like(h) : Tensor();
  Tensor last = torch::zeros_like(h);                                       // the last output (masking)
  Tensor U_zr = cell == kGRUResetBefore ? U.narrow(2, 0, 2 * u) : U;
  Tensor U_h = cell == kGRUResetBefore ? U.narrow(2, 2 * u, u) : Tensor();

  T *hp = ptr<T>(h), *cp = ptr<T>(c), *hdp = ptr<T>(hd), *lastp = ptr<T>(last), *recp = ptr<T>(rec);
  T *gates_p = ptr<T>(gates), *extra_p = ptr<T>(extra), *new_h_p = ptr<T>(new_h), *new_c_p = ptr<T>(new_c);
  T *out_p = ptr<T>(outputs), *h_prev_p = ptr<T>(h_prev), *c_prev_p = ptr<T>(c_prev), *r_hd_p = ptr<T>(r_hd);
  const T *x_p = ptr<T>(projected), *inner_p = ptr<T>(inner), *dropp = ptr<T>(rdrop), *peep_p = ptr<T>(peep);
  const bool* keepp = keep.defined() ? keep.data_ptr<bool>() : nullptr;
  const int64_t rec_width = rec.size(2), grain = rows_per_task(width);
  const Stacked<T> rec_s(rec), hd_s(hd), rbias_s(rbias), inner_s(inner), r_hd_s(r_hd);
  const Stacked<T> U_zr_s = low_precision ? Stacked<T>() : Stacked<T>(U_zr);
  const Stacked<T> U_h_s = low_precision ? Stacked<T>() : Stacked<T>(U_h);
  auto saved = [&](int64_t d, int64_t t, int64_t b) { return (d * T_ + t) * B + b; };  // row index in (D, T, B)
  std::vector<int64_t> running(D);
  // Step t of the directions d0 <= d < d1, whose rows are n0 <= n < n1.
  auto step = [&](int64_t t, int64_t d0, int64_t d1) {
    const int64_t n0 = d0 * B, n1 = d1 * B;
    for (int64_t d = d0; d < d1; ++d) {
      running[d] = when.running(d, t);
      std::copy(hp + d * B * u, hp + (d + 1) * B * u, h_prev_p + saved(d, t, 0) * u);
      if (lstm) std::copy(cp + d * B * u, cp + (d + 1) * B * u, c_prev_p + saved(d, t, 0) * u);
    }
    if (dropp) {
#pragma omp simd
      for (int64_t k = n0 * u; k < n1 * u; ++k) hdp[k] = hp[k] * dropp[k];
    }
    if (low_precision) bfloat16_product(rec, hd, U_zr, rbias, running, d0, d1);
    else per_direction_product(rec_s, hd_s, U_zr_s, rbias_s, u, rec_width, running, d0, d1);
    at::parallel_for(n0, n1, grain, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const int64_t d = n / B, b = n % B;
        if (b >= running[d]) continue;  // finished: the mask below holds its state
        const int64_t s = saved(d, t, b);
        Row<T> row{x_p + ((when.time(d, t) * B + b) * D + d) * width, recp + n * rec_width, gates_p + s * width,
                   extra_p ? extra_p + s * u : nullptr, hp + n * u, lstm ? new_c_p + n * u : nullptr,
                   new_h_p + n * u};
        if (lstm) {
          std::copy(cp + n * u, cp + (n + 1) * u, row.c);
          lstm_forward(row, u, peep_p ? peep_p + d * 3 * u : nullptr);
        } else if (cell == kGRUResetAfter) {
          gru_gates(row, u);
          gru_candidate(row, row.rec + 2 * u, u, true);
        } else if (cell == kGRUResetBefore) {
          gru_gates(row, u);
          const T* r = row.gates + u;
          T* rh = r_hd_p + n * u;
#pragma omp simd
          for (int64_t j = 0; j < u; ++j) rh[j] = r[j] * hdp[n * u + j];
        } else {
          simple_forward(row, u, cell == kSimpleRelu);
        }
      }
    });
    if (cell == kGRUResetBefore) {  // the candidate needs (r * h) W_hh: a second product
      if (low_precision) bfloat16_product(inner, r_hd, U_h, Tensor(), running, d0, d1);
      else per_direction_product(inner_s, r_hd_s, U_h_s, {}, u, u, running, d0, d1);
      at::parallel_for(n0, n1, grain, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          const int64_t d = n / B, b = n % B;
          if (b >= running[d]) continue;
          Row<T> row{x_p + ((when.time(d, t) * B + b) * D + d) * width, nullptr, gates_p + saved(d, t, b) * width,
                     nullptr, hp + n * u, nullptr, new_h_p + n * u};
          gru_candidate(row, inner_p + n * u, u, false);
        }
      });
    }
    // Keras' mask: where the step is real, take the new states and output; else hold them.
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t d = n / B, b = n % B, tau = when.time(d, t), o = n * u;
      T* out = out_p + ((b * T_ + tau) * D + d) * u;
      const bool real = b < running[d] && (!keepp || keepp[b * T_ + tau]);
      if (real) {
        std::copy(new_h_p + o, new_h_p + o + u, hp + o);
        if (lstm) std::copy(new_c_p + o, new_c_p + o + u, cp + o);
        std::copy(new_h_p + o, new_h_p + o + u, out);
        if (masked) std::copy(new_h_p + o, new_h_p + o + u, lastp + o);
      } else if (zero_output) {
        std::fill(out, out + u, T(0));
      } else {
        std::copy(lastp + o, lastp + o + u, out);
      }
    }
  };
  over_directions(D, [&](int64_t d0, int64_t d1) {
    for (int64_t t = 0; t < T_; ++t) step(t, d0, d1);
  });
  return {outputs, h, c, h_prev, c_prev, gates, extra};
}

// ------------------------------------------------------------------ backward
template <typename T>
std::vector<Tensor> backward_impl(int64_t cell, const Tensor& grad_outputs, const Tensor& grad_h,
                                  const Tensor& grad_c, const Tensor& U, const Tensor& peep, const Tensor& keep,
                                  const Tensor& rdrop,
                                  const Tensor& lengths, bool reverse_last, bool zero_output, const Tensor& h_prev,
                                  const Tensor& c_prev, const Tensor& gates, const Tensor& extra) {
  const int64_t D = U.size(0), T_ = gates.size(1), B = gates.size(2), u = U.size(1), G = gates_of(cell);
  const int64_t width = G * u;
  const bool lstm = cell == kLSTM;
  const Schedule when{T_, B, D, reverse_last, lengths.defined() ? lengths.data_ptr<int64_t>() : nullptr};
  auto opts = gates.options();
  Tensor gh = grad_h.defined() ? grad_h.clone() : torch::zeros({D, B, u}, opts);
  Tensor gc = lstm ? (grad_c.defined() ? grad_c.clone() : torch::zeros({D, B, u}, opts)) : Tensor();
  Tensor held = torch::zeros({D, B, u}, opts);      // gradient reaching an output a masked step repeated
  Tensor carry = torch::empty({D, B, u}, opts);     // gradient to h_{t-1} that bypasses the product
  Tensor g_hd = torch::empty({D, B, u}, opts);      // gradient to h_{t-1} * m through the product
  // Pre-activation gradients, (D, T, B, W) in processing order; zeros where a row had finished.
  Tensor dz = lengths.defined() ? torch::zeros_like(gates) : torch::empty_like(gates);
  // What multiplies U in the step: equal to dz except for the reset_after GRU's candidate columns.
  Tensor dr = cell != kGRUResetAfter ? dz : lengths.defined() ? torch::zeros_like(gates) : torch::empty_like(gates);
  // Every slot is written, except those of rows that had finished (lengths): those stay zero.
  Tensor grad_projected = lengths.defined() ? torch::zeros({T_, B, D, width}, opts)
                                            : torch::empty({T_, B, D, width}, opts);
  Tensor g_rh = cell == kGRUResetBefore ? torch::empty({D, B, u}, opts) : Tensor();
  Tensor Ut = U.transpose(1, 2);
  Tensor U_zr_t = cell == kGRUResetBefore ? U.narrow(2, 0, 2 * u).transpose(1, 2) : Tensor();
  Tensor U_h_t = cell == kGRUResetBefore ? U.narrow(2, 2 * u, u).transpose(1, 2) : Tensor();
  const Stacked<T> g_rh_s(g_rh), g_hd_s(g_hd), Ut_s(Ut), U_zr_t_s(U_zr_t), U_h_t_s(U_h_t);
  const Tensor grad_out = grad_outputs.defined() ? grad_outputs.contiguous() : torch::zeros({B, T_, D, u}, opts);

  T *ghp = ptr<T>(gh), *gcp = ptr<T>(gc), *heldp = ptr<T>(held), *carryp = ptr<T>(carry), *ghdp = ptr<T>(g_hd);
  T *dz_p = ptr<T>(dz), *dr_p = ptr<T>(dr), *gproj_p = ptr<T>(grad_projected);
  const T *gop = ptr<T>(grad_out), *dropp = ptr<T>(rdrop), *gates_p = ptr<T>(gates), *extra_p = ptr<T>(extra);
  const T *h_prev_p = ptr<T>(h_prev), *c_prev_p = ptr<T>(c_prev), *peep_p = ptr<T>(peep);
  const bool* keepp = keep.defined() ? keep.data_ptr<bool>() : nullptr;
  const int64_t grain = rows_per_task(width);
  // The recurrent dropout keep-mask, ones without dropout: the vectorized loops multiply by it
  // rather than branch on a null pointer (a masked load through it takes a microcode assist).
  const Tensor ones = dropp ? Tensor() : torch::ones({D, B, u}, opts);
  const T* keep_scale = dropp ? dropp : ptr<T>(ones);
  auto saved = [&](int64_t d, int64_t t, int64_t b) { return (d * T_ + t) * B + b; };
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
        const T* go = gop + ((b * T_ + tau) * D + d) * u;
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
    const Stacked<T> dz_t(dz, t);  // (D, B, W)
    if (cell == kGRUResetBefore) {  // the reset gate's gradient needs the product's: (r * hd) W_hh
      per_direction_product(g_rh_s, dz_t.from_column(2 * u), U_h_t_s, {}, u, u, running, d0, d1);
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
      per_direction_product(g_hd_s, dz_t, U_zr_t_s, {}, 2 * u, u, running, d0, d1);
      for (int64_t n = n0; n < n1; ++n) {  // plus the path through r * hd
        const int64_t d = n / B, b = n % B;
        if (b >= running[d]) continue;
        const T* r = gates_p + saved(d, t, b) * width + u;
#pragma omp simd
        for (int64_t j = 0; j < u; ++j) ghdp[n * u + j] += grh[n * u + j] * r[j];
      }
    } else {
      per_direction_product(g_hd_s, cell == kGRUResetAfter ? Stacked<T>(dr, t) : dz_t, Ut_s, {}, width, u, running, d0, d1);
    }
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t d = n / B, b = n % B, o = n * u;
      if (b < running[d]) {
#pragma omp simd
        for (int64_t j = 0; j < u; ++j) ghp[o + j] = carryp[o + j] + ghdp[o + j] * keep_scale[o + j];
        const T* z_grad = dz_p + saved(d, t, b) * width;  // into the input-ordered gradient of `projected`
        std::copy(z_grad, z_grad + width, gproj_p + ((when.time(d, t) * B + b) * D + d) * width);
      } else {
        std::copy(carryp + o, carryp + o + u, ghp + o);
      }
    }
  };
  over_directions(D, [&](int64_t d0, int64_t d1) {
    for (int64_t t = T_ - 1; t >= 0; --t) step(t, d0, d1);
  });

  // The recurrent kernel's gradient, one product over all steps: dU[d] = Σ_t hd_{t-1}ᵀ · dz_t.
  auto over_time = [D](const Tensor& x) { return x.reshape({D, -1, x.size(-1)}); };  // (D, T, B, .) views
  Tensor hd_all = rdrop.defined() ? h_prev * rdrop.unsqueeze(1) : h_prev;
  Tensor grad_U;
  if (cell == kGRUResetBefore) {
    Tensor r_hd = gates.narrow(3, u, u) * hd_all;
    grad_U = torch::cat({torch::bmm(over_time(hd_all).transpose(1, 2), over_time(dz.narrow(3, 0, 2 * u))),
                         torch::bmm(over_time(r_hd).transpose(1, 2), over_time(dz.narrow(3, 2 * u, u)))}, 2);
  } else {
    grad_U = torch::bmm(over_time(hd_all).transpose(1, 2), over_time(dr));
  }
  Tensor grad_rbias = cell == kGRUResetAfter ? dr.sum({1, 2}).unsqueeze(1) : Tensor();
  Tensor grad_peep;
  if (peep.defined()) {  // Σ over steps and rows: dz_i c_{t-1}, dz_f c_{t-1}, dz_o c_t
    Tensor c_t = gates.narrow(3, u, u) * c_prev + gates.narrow(3, 0, u) * gates.narrow(3, 2 * u, u);
    grad_peep = torch::stack({(dz.narrow(3, 0, u) * c_prev).sum({1, 2}), (dz.narrow(3, u, u) * c_prev).sum({1, 2}),
                              (dz.narrow(3, 3 * u, u) * c_t).sum({1, 2})}, 1);
  }
  return {grad_projected, grad_U, grad_rbias, gh, gc, grad_peep};
}

}  // namespace

// U may be bfloat16 (with float32 inputs) for generation: see bfloat16_product.
// Returns {outputs (B,T,D,u), h_T (D,B,u), c_T | None, and what backward needs, in processing
// order (D,T,B,.): h_prev, c_prev | None, gates (activated: SimpleRNN h; LSTM i f c~ o; GRU z r h~),
// extra | None (tanh(c_t) for the LSTM, h_{t-1} W_hh + b_hh for the reset_after GRU)}.
std::vector<Tensor> forward(int64_t cell, const Tensor& projected, const Tensor& U,
                            const std::optional<Tensor>& rbias, const std::optional<Tensor>& peep,
                            const Tensor& h0, const std::optional<Tensor>& c0,
                            const std::optional<Tensor>& keep, const std::optional<Tensor>& rdrop,
                            const std::optional<Tensor>& lengths, bool reverse_last, bool zero_output) {
  TORCH_CHECK(projected.device().is_cpu(), "the fused loop runs on CPU tensors");
  return AT_DISPATCH_FLOATING_TYPES(projected.scalar_type(), "fused_forward", [&] {
    return forward_impl<scalar_t>(cell, projected.contiguous(), U.contiguous(), given(rbias), given(peep),
                                  h0.contiguous(),
                                  given(c0), given(keep), given(rdrop), given(lengths), reverse_last, zero_output);
  });
}

// Gradients {projected (T,B,D,W), U, rbias | None, h0, c0 | None, peep | None} from those of outputs,
// h_T, c_T (None = zero).
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "recurrent time loop, forward");
  m.def("backward", &backward, "recurrent time loop, backward");
}
