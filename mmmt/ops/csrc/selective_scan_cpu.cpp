// Selective scan (Mamba S6) on the CPU: forward and backward, fp32 or fp64.
//
// Written for mmmt from the recurrence alone (see mmmt/ops/selective_scan_torch.py):
//
//   dt_t = softplus(delta_t + bias)  (or delta_t + bias)
//   h_t  = exp(dt_t * A) * h_{t-1} + dt_t * u_t * B_t        h_{-1} = 0, h in R^N
//   y_t  = <C_t, h_t> + D * u_t
//   out  = y * silu(z)                                      (when z is given)
//
// Layout contract with the Python wrapper (mmmt/ops/selective_scan_cpu.py), all contiguous:
//   u, delta, z         (batch, dim, L)
//   A                   (dim, N)
//   Bt, Ct              (batch, G_B, L, N), (batch, G_C, L, N)   -- B/C transposed so that the
//                       N values of one time step are contiguous; G = 1 for ungrouped B/C
//   D, delta_bias       (dim,)
//
// Work split (OpenMP, forward and backward): tasks are (batch, group, slice of the group's
// channels). A task walks the sequence chunk by chunk (`chunk` steps; in reverse for the
// backward pass) and, inside a chunk, through all its channels, carrying each channel's state
// from chunk to chunk. So the chunk's B/C values, and in the backward pass the task's private
// dB/dC accumulators for the chunk, stay in L1 while every channel of the group uses them, and
// no two threads ever write the same memory (the caller sums the slices' dB/dC).
//
// Vectorisation: for float32 with N a multiple of the SIMD width (N = 16 on every x86 level),
// the state is held in 1, 2 or 4 SIMD registers (GCC/Clang vector extensions: AVX-512, AVX2,
// SSE or NEON from the same source); the per-step dot products <C_t, h_t> are reduced for
// blocks of kW steps at once with a transpose-and-add tree. Other N, and float64 (used for
// gradient checks), run a generic kernel whose loops over N are left to the compiler.
// exp/softplus/sigmoid are branch-free polynomial versions, accurate to ~1 ulp, so no
// -ffast-math is needed.
//
// Backward: the forward pass (when gradients are needed) stores the state at the start of every
// chunk (batch * dim * ceil(L / chunk) * N values -- 25 MB for the largest NYUD shape at chunk
// 64) instead of all L states (1.6 GB there). The backward pass recomputes a chunk's decays and
// states from its checkpoint into a chunk * N buffer and runs the reverse-time adjoint
// recurrence over it. Per-channel sums over time (dA, dD, d delta_bias) are accumulated in
// double.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace mmmt_scan {
namespace {

constexpr int64_t kMaxState = 256;  // largest N handled by the generic (runtime-N) kernel
constexpr int64_t kMaxChunk = 128;  // largest checkpoint interval
constexpr int64_t kBlock = 4;       // chunks of one row handled in a row by the forward pass

// ---------------------------------------------------------------------------------------------
// Elementwise math. The float versions are branch-free so that loops over them vectorise; the
// double versions use libm (double is only used for checking gradients).

// exp(x) in float: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, then the degree-7 Taylor
// polynomial of exp(r) (truncation error < 1e-8 relative) scaled by 2^k built in the exponent
// bits. Inputs below -87 give exactly 0; inputs above 88 are clamped.
inline float exp_f(float x) {
  const bool under = x < -87.0f;
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // round-to-nearest of x / ln2 with the 1.5 * 2^23 trick (exact for |value| < 2^22)
  float k = x * 1.44269504088896341f;
  k = (k + 12582912.0f) - 12582912.0f;
  float r = x - k * 0.693359375f;  // ln2 split into a short high part ...
  r = r - k * -2.12194440e-4f;     // ... and the remainder
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const float res = p * scale;
  return under ? 0.0f : res;
}

// log(1 + e) for e in [0, 1] as 2 atanh(s), s = e / (2 + e) in [0, 1/3] (series to s^17).
inline float log1p_unit_f(float e) {
  const float s = e / (2.0f + e);
  const float s2 = s * s;
  float p = 1.0f / 17.0f;
  p = p * s2 + 1.0f / 15.0f;
  p = p * s2 + 1.0f / 13.0f;
  p = p * s2 + 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return 2.0f * s * p;
}

template <typename T>
inline T exp_(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return exp_f(x);
  } else {
    return std::exp(x);
  }
}

// softplus with PyTorch's default threshold: x for x > 20, else log(1 + exp(x)).
template <typename T>
inline T softplus_(T x) {
  if constexpr (std::is_same_v<T, float>) {
    // max(x, 0) + log1p(exp(-|x|)); above 20 the second term is below float resolution of x
    const float ax = x < 0.0f ? -x : x;
    const float pos = x > 0.0f ? x : 0.0f;
    return pos + log1p_unit_f(exp_f(-ax));
  } else {
    return x > T(20) ? x : std::log1p(std::exp(x));
  }
}

template <typename T>
inline T sigmoid_(T x) {
  return T(1) / (T(1) + exp_(-x));
}

// ---------------------------------------------------------------------------------------------

template <typename T>
struct Problem {
  int64_t batch = 0, dim = 0, len = 0, nstate = 0;
  int64_t groups_b = 1, groups_c = 1;  // groups of B / C (1 = ungrouped)
  int64_t chunk = 64, nchunks = 0;
  const T* u = nullptr;
  const T* delta = nullptr;
  const T* A = nullptr;
  const T* Bt = nullptr;
  const T* Ct = nullptr;
  const T* D = nullptr;     // optional
  const T* z = nullptr;     // optional
  const T* bias = nullptr;  // optional
  bool softplus = false;
};

// Pointers of one (batch, channel) row and the bounds of one chunk of it.
template <typename T>
struct RowChunk {
  int64_t row, d, t0, nt;
  const T* u;      // row start
  const T* delta;  // row start
  const T* z;      // row start or null
  const T* B;      // (nt, N) values of this chunk
  const T* C;
  T bias, Dv;

  RowChunk(const Problem<T>& p, int64_t b, int64_t d_, int64_t c) : d(d_) {
    const int64_t L = p.len, N = p.nstate;
    row = b * p.dim + d;
    t0 = c * p.chunk;
    nt = std::min(p.chunk, L - t0);
    u = p.u + row * L;
    delta = p.delta + row * L;
    z = p.z ? p.z + row * L : nullptr;
    B = p.Bt + ((b * p.groups_b + d / (p.dim / p.groups_b)) * L + t0) * N;
    C = p.Ct + ((b * p.groups_c + d / (p.dim / p.groups_c)) * L + t0) * N;
    bias = p.bias ? p.bias[d] : T(0);
    Dv = p.D ? p.D[d] : T(0);
  }
};

// Buffers of a backward task: the chunk's slice of its dB / dC accumulators.
template <typename T>
struct BackwardOut {
  T* du;      // (batch, dim, L)
  T* ddelta;  // (batch, dim, L)
  T* dz;      // (batch, dim, L) or null
  T* dB;      // the task's (L, N) accumulator
  T* dC;
};

// Per-row running values of a backward task (carried from chunk to chunk, in reverse).
template <typename T>
struct BackwardCarry {
  T* g;        // (N) d loss / d h_{t0 + nt - 1} from later steps, already times their decay
  double* dA;  // (N)
  double* dD;  // (1)
  double* dbias;
};

// dt and dt * u for the chunk; also d dt / d(delta) when asked.
template <typename T>
inline void chunk_dt(const Problem<T>& p, const RowChunk<T>& r, T* dt, T* dtu, T* dsp) {
  const T* u = r.u + r.t0;
  const T* delta = r.delta + r.t0;
  const T bias = r.bias;
  if (p.softplus) {
#pragma omp simd
    for (int64_t t = 0; t < r.nt; ++t) {
      const T v = softplus_(delta[t] + bias);
      dt[t] = v;
      dtu[t] = v * u[t];
    }
    if (dsp) {
#pragma omp simd
      for (int64_t t = 0; t < r.nt; ++t) dsp[t] = sigmoid_(delta[t] + bias);
    }
  } else {
#pragma omp simd
    for (int64_t t = 0; t < r.nt; ++t) {
      const T v = delta[t] + bias;
      dt[t] = v;
      dtu[t] = v * u[t];
    }
    if (dsp) {
      for (int64_t t = 0; t < r.nt; ++t) dsp[t] = T(1);
    }
  }
}

// <C_t, h_t> -> output of the chunk: out = (y + D u) * silu(z)
template <typename T>
inline void chunk_out(const RowChunk<T>& r, const T* y, T* out) {
  const T* u = r.u + r.t0;
  T* o = out + r.t0;
  if (r.z) {
    const T* z = r.z + r.t0;
#pragma omp simd
    for (int64_t t = 0; t < r.nt; ++t) {
      o[t] = (y[t] + r.Dv * u[t]) * z[t] * sigmoid_(z[t]);
    }
  } else {
#pragma omp simd
    for (int64_t t = 0; t < r.nt; ++t) o[t] = y[t] + r.Dv * u[t];
  }
}

// gradient at y (before the gate) from the output gradient go (row start), and the gate's own
// gradient into dz (row start); yb holds <C_t, h_t>.
template <typename T>
inline void chunk_dy(const RowChunk<T>& r, const T* go, const T* yb, T* dy, T* dz) {
  go += r.t0;
  if (r.z) {
    const T* u = r.u + r.t0;
    const T* z = r.z + r.t0;
    dz += r.t0;
#pragma omp simd
    for (int64_t t = 0; t < r.nt; ++t) {
      const T sg = sigmoid_(z[t]);
      const T y = yb[t] + r.Dv * u[t];
      dy[t] = go[t] * z[t] * sg;
      dz[t] = go[t] * y * sg * (T(1) + z[t] * (T(1) - sg));
    }
  } else {
    for (int64_t t = 0; t < r.nt; ++t) dy[t] = go[t];
  }
}

// the chunk's du and d delta from the per-step sums, and the row's double accumulators:
// s_dtu[t] = <g_t, B_t> (d loss / d(dt u)), s_da[t] = <g_t, a_t h_{t-1} A> (d loss / d dt, via A)
template <typename T>
inline void chunk_grads(const RowChunk<T>& r, const T* dy, const T* dt, const T* dsp,
                        const T* s_dtu, const T* s_da, const BackwardOut<T>& o,
                        const BackwardCarry<T>& k) {
  const T* u = r.u + r.t0;
  T* du = o.du + r.t0;
  T* dd = o.ddelta + r.t0;
  double sb = 0.0, sd = 0.0;
#pragma omp simd reduction(+ : sb, sd)
  for (int64_t t = 0; t < r.nt; ++t) {
    du[t] = s_dtu[t] * dt[t] + dy[t] * r.Dv;
    const T ddt = (s_dtu[t] * u[t] + s_da[t]) * dsp[t];
    dd[t] = ddt;
    sb += static_cast<double>(ddt);
    sd += static_cast<double>(dy[t]) * static_cast<double>(u[t]);
  }
  *k.dbias += sb;
  *k.dD += sd;
}

// ---------------------------------------------------------------------------------------------
// Generic chunk kernels: any N, float or double; the loops over N are left to the compiler.
// `out`, `ckpt` and the BackwardOut row tensors are passed at the row's start.

template <typename T>
void forward_chunk_generic(const Problem<T>& p, const RowChunk<T>& r, T* h, T* out, T* ckpt) {
  const int64_t N = p.nstate;
  const T* A = p.A + r.d * N;
  alignas(64) T dt[kMaxChunk];
  alignas(64) T dtu[kMaxChunk];
  alignas(64) T y[kMaxChunk];
  if (ckpt) std::memcpy(ckpt, h, sizeof(T) * N);
  chunk_dt(p, r, dt, dtu, static_cast<T*>(nullptr));
  for (int64_t t = 0; t < r.nt; ++t) {
    const T dtt = dt[t];
    const T dut = dtu[t];
    const T* Bp = r.B + t * N;
    const T* Cp = r.C + t * N;
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (int64_t n = 0; n < N; ++n) {
      const T hn = exp_(dtt * A[n]) * h[n] + dut * Bp[n];
      h[n] = hn;
      s += Cp[n] * hn;
    }
    y[t] = s;
  }
  chunk_out(r, y, out);
}

template <typename T>
void backward_chunk_generic(const Problem<T>& p, const RowChunk<T>& r, const T* ckpt,
                            const T* go, const BackwardOut<T>& o, const BackwardCarry<T>& k) {
  const int64_t N = p.nstate;
  const T* A = p.A + r.d * N;
  alignas(64) T dt[kMaxChunk];
  alignas(64) T dtu[kMaxChunk];
  alignas(64) T dsp[kMaxChunk];
  alignas(64) T dy[kMaxChunk];
  alignas(64) T yb[kMaxChunk];
  alignas(64) T s_dtu[kMaxChunk];
  alignas(64) T s_da[kMaxChunk];
  // decays and states of the chunk; hs holds h_{t0-1} .. h_{t0+nt-1}
  std::vector<T> as_buf(r.nt * N), hs_buf((r.nt + 1) * N), dA_buf(N, T(0));
  T* as = as_buf.data();
  T* hs = hs_buf.data();
  T* dA = dA_buf.data();
  T* g = k.g;
  chunk_dt(p, r, dt, dtu, dsp);

  std::memcpy(hs, ckpt, sizeof(T) * N);
  for (int64_t t = 0; t < r.nt; ++t) {
    const T dtt = dt[t];
    const T dut = dtu[t];
    const T* Bp = r.B + t * N;
    const T* Cp = r.C + t * N;
    const T* hp = hs + t * N;
    T* hn = hs + (t + 1) * N;
    T* ap = as + t * N;
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (int64_t n = 0; n < N; ++n) {
      const T an = exp_(dtt * A[n]);
      ap[n] = an;
      const T hv = an * hp[n] + dut * Bp[n];
      hn[n] = hv;
      s += Cp[n] * hv;
    }
    yb[t] = s;
  }
  chunk_dy(r, go, yb, dy, o.dz);

  for (int64_t t = r.nt - 1; t >= 0; --t) {
    const T dyt = dy[t];
    const T dtt = dt[t];
    const T dut = dtu[t];
    const T* Bp = r.B + t * N;
    const T* Cp = r.C + t * N;
    const T* hp = hs + t * N;        // h_{t-1}
    const T* hc = hs + (t + 1) * N;  // h_t
    const T* ap = as + t * N;
    T* dBp = o.dB + (r.t0 + t) * N;
    T* dCp = o.dC + (r.t0 + t) * N;
    T sd = T(0), sa = T(0);
#pragma omp simd reduction(+ : sd, sa)
    for (int64_t n = 0; n < N; ++n) {
      const T gh = g[n] + dyt * Cp[n];  // d loss / d h_t
      dCp[n] += dyt * hc[n];
      dBp[n] += gh * dut;
      sd += gh * Bp[n];
      const T q = gh * ap[n] * hp[n];  // d loss / d (dt * A[n])
      sa += q * A[n];
      dA[n] += q * dtt;
      g[n] = gh * ap[n];
    }
    s_dtu[t] = sd;
    s_da[t] = sa;
  }
  for (int64_t n = 0; n < N; ++n) k.dA[n] += static_cast<double>(dA[n]);
  chunk_grads(r, dy, dt, dsp, s_dtu, s_da, o, k);
}

// ---------------------------------------------------------------------------------------------
// float chunk kernels with explicit SIMD vectors (GCC/Clang vector extensions, so the same code
// lowers to AVX-512, AVX2, SSE or NEON): the state of N = kNV * kW values is kNV vectors held in
// registers through the chunk, and each step ends with one horizontal sum.

#if defined(__AVX512F__)
constexpr int kW = 16;
#elif defined(__AVX__)
constexpr int kW = 8;
#else
constexpr int kW = 4;
#endif
typedef float vf __attribute__((vector_size(kW * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(kW * sizeof(float))));

inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}
inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof(vf)); }
inline vf vsplat(float x) { return vf{} + x; }

// lane-wise max / min: one instruction where the ISA has it (a ?: blend costs two). A NaN in
// `a` is returned as is (x86 returns the second operand of maxps/minps when either is NaN).
#if defined(__AVX512F__)
#define MMMT_LANEWISE(op, a, b) \
  reinterpret_cast<vf>(_mm512_##op##_ps(reinterpret_cast<__m512>(b), reinterpret_cast<__m512>(a)))
#elif defined(__AVX__)
#define MMMT_LANEWISE(op, a, b) \
  reinterpret_cast<vf>(_mm256_##op##_ps(reinterpret_cast<__m256>(b), reinterpret_cast<__m256>(a)))
#elif defined(__SSE__)
#define MMMT_LANEWISE(op, a, b) \
  reinterpret_cast<vf>(_mm_##op##_ps(reinterpret_cast<__m128>(b), reinterpret_cast<__m128>(a)))
#elif defined(__ARM_NEON)
#define MMMT_LANEWISE(op, a, b) \
  reinterpret_cast<vf>(v##op##q_f32(reinterpret_cast<float32x4_t>(a), \
                                    reinterpret_cast<float32x4_t>(b)))
#endif
inline vf vmax(vf a, vf b) {
#ifdef MMMT_LANEWISE
  return MMMT_LANEWISE(max, a, b);
#else
  return a < b ? b : a;
#endif
}
inline vf vmin(vf a, vf b) {
#ifdef MMMT_LANEWISE
  return MMMT_LANEWISE(min, a, b);
#else
  return a < b ? a : b;
#endif
}
#undef MMMT_LANEWISE

// 2^y, for the decays exp(dt * A) = 2^(dt * A * log2(e)) with A pre-scaled by log2(e) once per
// chunk: k = round(y), 2^(y - k) by the degree-7 Taylor polynomial of exp((y - k) ln2) with ln2
// folded into the coefficients (|y - k| <= 1/2: truncation < 1e-8 relative), times 2^k. With
// AVX-512 the rounding and the scaling by 2^k are single instructions (vrndscaleps, vscalefps)
// that handle any y, including under/overflow to 0/inf; elsewhere y is clamped to [-126, 126]
// (2^-126 ~ 1e-38 stands in for anything smaller) and 2^k is built in the exponent bits. The
// rounding of y itself costs at most |y| * 1.2e-7 relative, i.e. an absolute error below 1e-7 on
// a decay e^-x (x e^-x <= 1/e): the same as rounding dt * A before an exact exp.
inline vf vexp2(vf y) {
  constexpr float c1 = 0.693147180559945309f;  // ln2^i / i!
  constexpr float c2 = 0.240226506959100712f;
  constexpr float c3 = 0.0555041086648215800f;
  constexpr float c4 = 0.00961812910762847716f;
  constexpr float c5 = 0.00133335581464284434f;
  constexpr float c6 = 0.000154035303933816100f;
  constexpr float c7 = 0.0000152527338040598403f;
#if defined(__AVX512F__)
  const __m512 yy = reinterpret_cast<__m512>(y);
  const __m512 k = _mm512_roundscale_ps(yy, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vf r = reinterpret_cast<vf>(_mm512_sub_ps(yy, k));
#else
  y = vmax(y, vsplat(-126.0f));
  y = vmin(y, vsplat(126.0f));
  const vf k = (y + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const vf r = y - k;
#endif
  vf p = vsplat(c7);
  p = p * r + c6;
  p = p * r + c5;
  p = p * r + c4;
  p = p * r + c3;
  p = p * r + c2;
  p = p * r + c1;
  p = p * r + 1.0f;
#if defined(__AVX512F__)
  return reinterpret_cast<vf>(_mm512_scalef_ps(reinterpret_cast<__m512>(p), k));
#else
  const vi bits = (__builtin_convertvector(k, vi) + 127) << 23;
  vf scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
#endif
}

constexpr float kLog2e = 1.44269504088896341f;

// log(1 + e) for e in [0, 1], the vector twin of log1p_unit_f
inline vf vlog1p_unit(vf e) {
  const vf s = e / (2.0f + e);
  const vf s2 = s * s;
  vf p = vsplat(1.0f / 17.0f);
  p = p * s2 + 1.0f / 15.0f;
  p = p * s2 + 1.0f / 13.0f;
  p = p * s2 + 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return 2.0f * s * p;
}

// chunk_dt for float, kW steps at a time: softplus(x) = max(x, 0) + log1p(exp(-|x|)) and
// sigmoid(x) = 1 / (1 + exp(-|x|)) (times exp(-|x|) for x < 0), sharing exp(-|x|)
inline void chunk_dt_vec(const Problem<float>& p, const RowChunk<float>& r, float* dt,
                         float* dtu, float* dsp) {
  const float* u = r.u + r.t0;
  const float* delta = r.delta + r.t0;
  int64_t t = 0;
  if (p.softplus) {
    for (; t + kW <= r.nt; t += kW) {
      const vf x = vload(delta + t) + r.bias;
      const vf e = vexp2(vmax(x, -x) * -kLog2e);  // exp(-|x|)
      const vf v = vmax(x, vf{}) + vlog1p_unit(e);
      vstore(dt + t, v);
      vstore(dtu + t, v * vload(u + t));
      if (dsp) {
        const vf inv = 1.0f / (1.0f + e);
        vstore(dsp + t, x >= 0.0f ? inv : e * inv);
      }
    }
  } else {
    for (; t + kW <= r.nt; t += kW) {
      const vf v = vload(delta + t) + r.bias;
      vstore(dt + t, v);
      vstore(dtu + t, v * vload(u + t));
      if (dsp) vstore(dsp + t, vsplat(1.0f));
    }
  }
  for (; t < r.nt; ++t) {  // the tail of a partial last chunk
    const float x = delta[t] + r.bias;
    const float v = p.softplus ? softplus_(x) : x;
    dt[t] = v;
    dtu[t] = v * u[t];
    if (dsp) dsp[t] = p.softplus ? sigmoid_(x) : 1.0f;
  }
}

// Row sums of kW rows at once: v[i] holds kW partial sums of row i; on return v[0][i] is the
// total of row i. A transpose-and-add tree (kW - 1 two-source shuffles and adds) instead of
// kW separate horizontal sums.
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define MMMT_SCAN_SHUFFLE 1
#endif
#endif

#ifdef MMMT_SCAN_SHUFFLE
template <int S, std::size_t... K>
inline vf combine(vf x, vf y, std::index_sequence<K...>) {
  // from each row's S partials (rows packed S lanes apart across x:y) add the two halves
  return __builtin_shufflevector(x, y, (int(K) / (S / 2)) * S + int(K) % (S / 2)...) +
         __builtin_shufflevector(x, y, (int(K) / (S / 2)) * S + int(K) % (S / 2) + S / 2 ...);
}

template <int S>
inline void tree_sum(vf* v) {
  if constexpr (S > 1) {
    for (int i = 0; i < S / 2; ++i) {
      v[i] = combine<S>(v[2 * i], v[2 * i + 1], std::make_index_sequence<kW>{});
    }
    tree_sum<S / 2>(v);
  }
}
#endif

// y[t] = sum of the lanes of P[t] for t < nt (P has room for a multiple of kW vectors)
inline void row_sums(vf* P, int64_t nt, float* y) {
  const int64_t padded = (nt + kW - 1) / kW * kW;
  for (int64_t t = nt; t < padded; ++t) P[t] = vf{};
  for (int64_t t = 0; t < nt; t += kW) {
#ifdef MMMT_SCAN_SHUFFLE
    vf v[kW];
    for (int i = 0; i < kW; ++i) v[i] = P[t + i];
    tree_sum<kW>(v);
    const vf sums = v[0];
#else  // compilers without __builtin_shufflevector (GCC < 12)
    vf sums{};
    for (int i = 0; i < kW; ++i) {
      float acc = 0.0f;
      for (int l = 0; l < kW; ++l) acc += P[t + i][l];
      sums[i] = acc;
    }
#endif
    if (t + kW <= nt) {
      vstore(y + t, sums);
    } else {
      for (int64_t i = 0; i < nt - t; ++i) y[t + i] = sums[i];
    }
  }
}

template <int kNV>
void forward_chunk_vec(const Problem<float>& p, const RowChunk<float>& r, float* hstate,
                       float* out, float* ckpt) {
  constexpr int64_t N = kNV * kW;
  vf a2[kNV], h[kNV];  // a2 = A * log2(e)
  for (int j = 0; j < kNV; ++j) {
    a2[j] = vload(p.A + r.d * N + j * kW) * kLog2e;
    h[j] = vload(hstate + j * kW);
  }
  if (ckpt) std::memcpy(ckpt, hstate, sizeof(float) * N);
  alignas(64) float dt[kMaxChunk];
  alignas(64) float dtu[kMaxChunk];
  alignas(64) float y[kMaxChunk];
  vf P[kMaxChunk];  // per step: the kW partial sums of <C_t, h_t>
  chunk_dt_vec(p, r, dt, dtu, nullptr);
  const float* Bp = r.B;
  const float* Cp = r.C;
  for (int64_t t = 0; t < r.nt; ++t, Bp += N, Cp += N) {
    const float dtt = dt[t];
    const float dut = dtu[t];
    vf acc{};
    for (int j = 0; j < kNV; ++j) {
      h[j] = vexp2(dtt * a2[j]) * h[j] + dut * vload(Bp + j * kW);
      acc += vload(Cp + j * kW) * h[j];
    }
    P[t] = acc;
  }
  row_sums(P, r.nt, y);
  for (int j = 0; j < kNV; ++j) vstore(hstate + j * kW, h[j]);
  chunk_out(r, y, out);
}

template <int kNV>
void backward_chunk_vec(const Problem<float>& p, const RowChunk<float>& r, const float* ckpt,
                        const float* go, const BackwardOut<float>& o,
                        const BackwardCarry<float>& k) {
  constexpr int64_t N = kNV * kW;
  alignas(64) float dt[kMaxChunk];
  alignas(64) float dtu[kMaxChunk];
  alignas(64) float dsp[kMaxChunk];
  alignas(64) float dy[kMaxChunk];
  alignas(64) float yb[kMaxChunk];
  alignas(64) float s_dtu[kMaxChunk];
  alignas(64) float s_da[kMaxChunk];
  alignas(64) float as[kMaxChunk * N];        // decays a_t
  alignas(64) float hs[(kMaxChunk + 1) * N];  // h_{t0-1} .. h_{t0+nt-1}
  vf P[kMaxChunk], Q[kMaxChunk];               // per-step partial sums, reduced per chunk
  chunk_dt_vec(p, r, dt, dtu, dsp);

  vf a[kNV], a2[kNV], h[kNV];  // a2 = A * log2(e)
  for (int j = 0; j < kNV; ++j) {
    a[j] = vload(p.A + r.d * N + j * kW);
    a2[j] = a[j] * kLog2e;
    h[j] = vload(ckpt + j * kW);
    vstore(hs + j * kW, h[j]);
  }
  for (int64_t t = 0; t < r.nt; ++t) {
    const float dtt = dt[t];
    const float dut = dtu[t];
    vf acc{};
    for (int j = 0; j < kNV; ++j) {
      const vf an = vexp2(dtt * a2[j]);
      vstore(as + t * N + j * kW, an);
      h[j] = an * h[j] + dut * vload(r.B + t * N + j * kW);
      vstore(hs + (t + 1) * N + j * kW, h[j]);
      acc += vload(r.C + t * N + j * kW) * h[j];
    }
    P[t] = acc;
  }
  row_sums(P, r.nt, yb);
  chunk_dy(r, go, yb, dy, o.dz);

  vf g[kNV], dA[kNV];
  for (int j = 0; j < kNV; ++j) {
    g[j] = vload(k.g + j * kW);
    dA[j] = vf{};
  }
  for (int64_t t = r.nt - 1; t >= 0; --t) {
    const float dyt = dy[t];
    const float dtt = dt[t];
    const float dut = dtu[t];
    const float* Bp = r.B + t * N;
    const float* Cp = r.C + t * N;
    float* dBp = o.dB + (r.t0 + t) * N;
    float* dCp = o.dC + (r.t0 + t) * N;
    vf sd{}, sa{};
    for (int j = 0; j < kNV; ++j) {
      const int64_t off = j * kW;
      const vf ap = vload(as + t * N + off);
      const vf gh = g[j] + dyt * vload(Cp + off);  // d loss / d h_t
      vstore(dCp + off, vload(dCp + off) + dyt * vload(hs + (t + 1) * N + off));
      vstore(dBp + off, vload(dBp + off) + gh * dut);
      sd += gh * vload(Bp + off);
      const vf q = gh * ap * vload(hs + t * N + off);  // d loss / d (dt * A)
      sa += q * a[j];
      dA[j] += q * dtt;
      g[j] = gh * ap;
    }
    P[t] = sd;
    Q[t] = sa;
  }
  row_sums(P, r.nt, s_dtu);
  row_sums(Q, r.nt, s_da);
  for (int j = 0; j < kNV; ++j) {
    vstore(k.g + j * kW, g[j]);
    for (int i = 0; i < kW; ++i) k.dA[j * kW + i] += static_cast<double>(dA[j][i]);
  }
  chunk_grads(r, dy, dt, dsp, s_dtu, s_da, o, k);
}

// ---------------------------------------------------------------------------------------------

int num_threads() {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;  // never nest inside another parallel region
  return std::max(1, at::get_num_threads());
#else
  return 1;
#endif
}

// Large outputs: ask Linux for transparent huge pages before the first touch. The buffers come
// fresh from mmap on every call, and faulting them in 4 KiB pages costs as much as the scan
// itself (about 65 ms for the 99 MB output of the largest NYUD shape on a 2-core VM; ~10 ms with
// 2 MiB pages). A hint only: a no-op where THP is disabled.
at::Tensor empty_large(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  at::Tensor t = at::empty(sizes, opts);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = begin + static_cast<uintptr_t>(t.nbytes());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = end & ~(kHuge - 1);
  if (t.nbytes() >= (uintptr_t(8) << 20) && last > first) {
    madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  return t;
}

void check_inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                  const at::Tensor& Bt, const at::Tensor& Ct, const std::optional<at::Tensor>& D,
                  const std::optional<at::Tensor>& z, const std::optional<at::Tensor>& bias,
                  int64_t chunk) {
  const auto dtype = u.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "mmmt_scan: float32 or float64 only");
  TORCH_CHECK(u.dim() == 3, "mmmt_scan: u must be (batch, dim, L)");
  const int64_t batch = u.size(0), dim = u.size(1), len = u.size(2);
  TORCH_CHECK(A.dim() == 2 && A.size(0) == dim, "mmmt_scan: A must be (dim, N)");
  const int64_t nstate = A.size(1);
  TORCH_CHECK(nstate >= 1 && nstate <= kMaxState, "mmmt_scan: N must be in [1, ", kMaxState, "]");
  TORCH_CHECK(chunk >= 1 && chunk <= kMaxChunk, "mmmt_scan: chunk must be in [1, ", kMaxChunk,
              "]");
  auto same = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK(t.device().is_cpu(), "mmmt_scan: ", name, " must be a CPU tensor");
    TORCH_CHECK(t.scalar_type() == dtype, "mmmt_scan: ", name, " has a different dtype");
    TORCH_CHECK(t.is_contiguous(), "mmmt_scan: ", name, " must be contiguous");
  };
  same(u, "u");
  same(delta, "delta");
  same(A, "A");
  same(Bt, "B");
  same(Ct, "C");
  TORCH_CHECK(delta.sizes() == u.sizes(), "mmmt_scan: delta must match u");
  for (const auto* m : {&Bt, &Ct}) {
    TORCH_CHECK(m->dim() == 4 && m->size(0) == batch && m->size(2) == len &&
                    m->size(3) == nstate,
                "mmmt_scan: B/C must be (batch, G, L, N) after transposition");
    TORCH_CHECK(m->size(1) >= 1 && dim % m->size(1) == 0,
                "mmmt_scan: channels must be divisible by the B/C groups");
  }
  if (D) {
    same(*D, "D");
    TORCH_CHECK(D->numel() == dim, "mmmt_scan: D must be (dim,)");
  }
  if (bias) {
    same(*bias, "delta_bias");
    TORCH_CHECK(bias->numel() == dim, "mmmt_scan: delta_bias must be (dim,)");
  }
  if (z) {
    same(*z, "z");
    TORCH_CHECK(z->sizes() == u.sizes(), "mmmt_scan: z must match u");
  }
}

template <typename T>
Problem<T> make_problem(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                        const at::Tensor& Bt, const at::Tensor& Ct,
                        const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
                        const std::optional<at::Tensor>& bias, bool softplus, int64_t chunk) {
  Problem<T> p;
  p.batch = u.size(0);
  p.dim = u.size(1);
  p.len = u.size(2);
  p.nstate = A.size(1);
  p.groups_b = Bt.size(1);
  p.groups_c = Ct.size(1);
  p.chunk = chunk;
  p.nchunks = (p.len + chunk - 1) / chunk;
  p.u = u.const_data_ptr<T>();
  p.delta = delta.const_data_ptr<T>();
  p.A = A.const_data_ptr<T>();
  p.Bt = Bt.const_data_ptr<T>();
  p.Ct = Ct.const_data_ptr<T>();
  p.D = D ? D->const_data_ptr<T>() : nullptr;
  p.z = z ? z->const_data_ptr<T>() : nullptr;
  p.bias = bias ? bias->const_data_ptr<T>() : nullptr;
  p.softplus = softplus;
  return p;
}

template <typename T>
using ForwardChunk = void (*)(const Problem<T>&, const RowChunk<T>&, T*, T*, T*);
template <typename T>
using BackwardChunk = void (*)(const Problem<T>&, const RowChunk<T>&, const T*, const T*,
                               const BackwardOut<T>&, const BackwardCarry<T>&);

// the SIMD kernels where N is 1, 2 or 4 vectors of float (N = 16 on every x86 level)
template <typename T>
ForwardChunk<T> pick_forward(int64_t N) {
  if constexpr (std::is_same_v<T, float>) {
    if (N == kW) return &forward_chunk_vec<1>;
    if (N == 2 * kW) return &forward_chunk_vec<2>;
    if (N == 4 * kW) return &forward_chunk_vec<4>;
  }
  return &forward_chunk_generic<T>;
}

template <typename T>
BackwardChunk<T> pick_backward(int64_t N) {
  if constexpr (std::is_same_v<T, float>) {
    if (N == kW) return &backward_chunk_vec<1>;
    if (N == 2 * kW) return &backward_chunk_vec<2>;
    if (N == 4 * kW) return &backward_chunk_vec<4>;
  }
  return &backward_chunk_generic<T>;
}

// Work split: tasks are (batch, group, slice of the group's channels), group being the finer of
// B's and C's grouping. A task walks the chunks in time order (reverse order for the backward
// pass) and, within a chunk, all its channels: the chunk's B/C values (and dB/dC accumulators)
// stay in L1 while every channel of the group uses them.
struct Split {
  int64_t groups, per_group, slices, per_slice, tasks;
  Split(int64_t batch, int64_t dim, int64_t groups_, int64_t slices_)
      : groups(groups_), per_group(dim / groups_) {
    slices = std::max<int64_t>(1, std::min(slices_, per_group));
    per_slice = (per_group + slices - 1) / slices;
    tasks = batch * groups * slices;
  }
  // (batch, first channel, end channel) of a task
  void task(int64_t i, int64_t* b, int64_t* d0, int64_t* d1) const {
    *b = i / (groups * slices);
    const int64_t g = (i / slices) % groups;
    const int64_t s = i % slices;
    *d0 = std::min(g * per_group + s * per_slice, g * per_group + per_group);
    *d1 = std::min(g * per_group + per_group, *d0 + per_slice);
  }
};

// Threads for a call: one for small problems, where starting a parallel region costs more than
// it saves (and much more when another program keeps the cores busy), PyTorch's count otherwise.
template <typename T>
int threads_for(const Problem<T>& p) {
  constexpr int64_t kGrain = 1 << 15;  // elements (batch * dim * L); PyTorch's default grain
  return p.batch * p.dim * p.len < kGrain ? 1 : num_threads();
}

// slices per (batch, group) so that there are about `per_thread` tasks per thread
int64_t slices_for(int64_t batch, int64_t groups, int per_thread) {
  const int64_t want = static_cast<int64_t>(per_thread) * num_threads();
  if (batch * groups <= 0) return 1;
  return std::max<int64_t>(1, (want + batch * groups - 1) / (batch * groups));
}

// Prefetch the next row's slice of a (batch, dim, L) tensor: consecutive rows of a task are L
// apart, which the hardware prefetchers do not follow.
template <typename T>
inline void prefetch_row(const T* base, int64_t row, int64_t L, int64_t t0, int64_t nt) {
  if (!base) return;
  const char* p = reinterpret_cast<const char*>(base + row * L + t0);
  const int64_t bytes = nt * static_cast<int64_t>(sizeof(T));
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
}

template <typename T>
void forward_all(const Problem<T>& p, T* out, T* last, T* ckpt) {
  const ForwardChunk<T> fn = pick_forward<T>(p.nstate);
  const int64_t N = p.nstate, L = p.len;
  const int64_t groups = std::max(p.groups_b, p.groups_c);
  const Split sp(p.batch, p.dim, groups, slices_for(p.batch, groups, 4));
  const int nt = threads_for(p);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t task = 0; task < sp.tasks; ++task) {
    int64_t b, d0, d1;
    sp.task(task, &b, &d0, &d1);
    T* h = last + (b * p.dim + d0) * N;  // the running states live in `last`
    std::fill(h, h + (d1 - d0) * N, T(0));
    // kBlock chunks of a row per visit: longer contiguous runs of u/delta/out per row (fewer
    // TLB misses, better prefetch) while the block's B/C (kBlock * chunk * N * 8 bytes) stays
    // in L1/L2 for all the task's rows
    for (int64_t c0 = 0; c0 < p.nchunks; c0 += kBlock) {
      const int64_t c1 = std::min(p.nchunks, c0 + kBlock);
      const int64_t ts = c0 * p.chunk, tn = std::min(L, c1 * p.chunk) - ts;
      for (int64_t d = d0; d < d1; ++d) {
        const int64_t row = b * p.dim + d;
        if (d + 1 < d1) {
          prefetch_row(p.u, row + 1, L, ts, tn);
          prefetch_row(p.delta, row + 1, L, ts, tn);
          prefetch_row(p.z, row + 1, L, ts, tn);
        }
        for (int64_t c = c0; c < c1; ++c) {
          const RowChunk<T> r(p, b, d, c);
          fn(p, r, h + (d - d0) * N, out + row * L,
             ckpt ? ckpt + (row * p.nchunks + c) * N : nullptr);
        }
      }
    }
  }
}

template <typename T>
void backward_all(const Problem<T>& p, const Split& sp, const T* ckpt, const T* dout,
                  const T* dlast, T* du, T* ddelta, T* dz, T* dB_slices, T* dC_slices,
                  double* dA, double* dD, double* dbias) {
  const BackwardChunk<T> fn = pick_backward<T>(p.nstate);
  const int64_t N = p.nstate, L = p.len;
  const int nt = threads_for(p);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t task = 0; task < sp.tasks; ++task) {
    int64_t b, d0, d1;
    sp.task(task, &b, &d0, &d1);
    const int64_t rows = d1 - d0, row0 = b * p.dim + d0;
    std::vector<T> g(rows * N, T(0));
    if (dlast) std::copy(dlast + row0 * N, dlast + (row0 + rows) * N, g.begin());
    double* dA_t = dA + row0 * N;  // accumulated in place (zeroed by the caller)
    for (int64_t c = p.nchunks - 1; c >= 0; --c) {
      for (int64_t d = d0; d < d1; ++d) {
        const RowChunk<T> r(p, b, d, c);
        if (d + 1 < d1) {
          prefetch_row(p.u, r.row + 1, L, r.t0, r.nt);
          prefetch_row(p.delta, r.row + 1, L, r.t0, r.nt);
          prefetch_row(p.z, r.row + 1, L, r.t0, r.nt);
          prefetch_row(dout, r.row + 1, L, r.t0, r.nt);
        }
        const BackwardOut<T> o{du + r.row * L, ddelta + r.row * L, dz ? dz + r.row * L : nullptr,
                               dB_slices + task * L * N, dC_slices + task * L * N};
        const BackwardCarry<T> k{g.data() + (d - d0) * N, dA_t + (d - d0) * N, dD + r.row,
                                 dbias + r.row};
        fn(p, r, ckpt + (r.row * p.nchunks + c) * N, dout + r.row * L, o, k);
      }
    }
  }
}

// Returns (out, last_state, checkpoints); checkpoints is empty unless save_checkpoints.
std::tuple<at::Tensor, at::Tensor, at::Tensor> scan_fwd(
    const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
    const at::Tensor& Ct, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
    const std::optional<at::Tensor>& delta_bias, bool delta_softplus, int64_t chunk,
    bool save_checkpoints) {
  check_inputs(u, delta, A, Bt, Ct, D, z, delta_bias, chunk);
  const int64_t batch = u.size(0), dim = u.size(1), len = u.size(2), nstate = A.size(1);
  const int64_t nchunks = (len + chunk - 1) / chunk;
  at::Tensor out = empty_large({batch, dim, len}, u.options());
  at::Tensor last = at::empty({batch, dim, nstate}, u.options());
  at::Tensor ckpt = save_checkpoints ? at::empty({batch, dim, nchunks, nstate}, u.options())
                                     : at::empty({0}, u.options());
  if (u.scalar_type() == at::kFloat) {
    auto p = make_problem<float>(u, delta, A, Bt, Ct, D, z, delta_bias, delta_softplus, chunk);
    float* ck = save_checkpoints ? ckpt.mutable_data_ptr<float>() : nullptr;
    forward_all<float>(p, out.mutable_data_ptr<float>(), last.mutable_data_ptr<float>(), ck);
  } else {
    auto p = make_problem<double>(u, delta, A, Bt, Ct, D, z, delta_bias, delta_softplus, chunk);
    double* ck = save_checkpoints ? ckpt.mutable_data_ptr<double>() : nullptr;
    forward_all<double>(p, out.mutable_data_ptr<double>(), last.mutable_data_ptr<double>(), ck);
  }
  return {out, last, ckpt};
}

// Returns (du, ddelta, dz, dB_slices, dC_slices, dA, dD, d_delta_bias):
//   dz is empty without z; dB_slices / dC_slices are (batch, G, S, L, N) with S channel slices
//   (`slices`, or automatic for 0) and
//   G = max(G_B, G_C), to be summed over the slice axis (and over G where B or C is ungrouped);
//   dA (batch, dim, N), dD and d_delta_bias (batch, dim) are float64, to be summed over batch.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
           at::Tensor>
scan_bwd(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
         const at::Tensor& Ct, const std::optional<at::Tensor>& D,
         const std::optional<at::Tensor>& z, const std::optional<at::Tensor>& delta_bias,
         bool delta_softplus, int64_t chunk, const at::Tensor& checkpoints,
         const at::Tensor& dout, const std::optional<at::Tensor>& dlast, int64_t slices) {
  check_inputs(u, delta, A, Bt, Ct, D, z, delta_bias, chunk);
  const int64_t batch = u.size(0), dim = u.size(1), len = u.size(2), nstate = A.size(1);
  const int64_t nchunks = (len + chunk - 1) / chunk;
  const int64_t groups = std::max(Bt.size(1), Ct.size(1));
  TORCH_CHECK(Bt.size(1) == 1 || Bt.size(1) == groups, "mmmt_scan: B groups must be 1 or G");
  TORCH_CHECK(Ct.size(1) == 1 || Ct.size(1) == groups, "mmmt_scan: C groups must be 1 or G");
  TORCH_CHECK(slices >= 0, "mmmt_scan: slices must be >= 0 (0 = automatic)");
  // about two tasks per thread: each slice owns an (L, N) dB and dC accumulator
  const Split sp(batch, dim, groups, slices > 0 ? slices : slices_for(batch, groups, 2));
  TORCH_CHECK(checkpoints.is_contiguous() && checkpoints.scalar_type() == u.scalar_type() &&
                  checkpoints.numel() == batch * dim * nchunks * nstate,
              "mmmt_scan: checkpoints do not match the inputs (same chunk as the forward?)");
  TORCH_CHECK(dout.is_contiguous() && dout.scalar_type() == u.scalar_type() &&
                  dout.sizes() == u.sizes(),
              "mmmt_scan: grad of out must be a contiguous (batch, dim, L) tensor of u's dtype");
  if (dlast) {
    TORCH_CHECK(dlast->is_contiguous() && dlast->scalar_type() == u.scalar_type() &&
                    dlast->numel() == batch * dim * nstate,
                "mmmt_scan: grad of last_state must be a contiguous (batch, dim, N) tensor");
  }
  auto opts = u.options();
  auto dopts = opts.dtype(at::kDouble);
  at::Tensor du = empty_large({batch, dim, len}, opts);
  at::Tensor ddelta = empty_large({batch, dim, len}, opts);
  at::Tensor dz = z ? empty_large({batch, dim, len}, opts) : at::empty({0}, opts);
  at::Tensor dB = at::zeros({batch, groups, sp.slices, len, nstate}, opts);
  at::Tensor dC = at::zeros({batch, groups, sp.slices, len, nstate}, opts);
  at::Tensor dA = at::zeros({batch, dim, nstate}, dopts);
  at::Tensor dD = at::zeros({batch, dim}, dopts);
  at::Tensor dbias = at::zeros({batch, dim}, dopts);

  auto run = [&](auto tag) {
    using T = decltype(tag);
    auto p = make_problem<T>(u, delta, A, Bt, Ct, D, z, delta_bias, delta_softplus, chunk);
    backward_all<T>(
        p, sp, checkpoints.const_data_ptr<T>(), dout.const_data_ptr<T>(),
        dlast ? dlast->const_data_ptr<T>() : nullptr, du.mutable_data_ptr<T>(),
        ddelta.mutable_data_ptr<T>(), z ? dz.mutable_data_ptr<T>() : nullptr,
        dB.mutable_data_ptr<T>(), dC.mutable_data_ptr<T>(), dA.mutable_data_ptr<double>(),
        dD.mutable_data_ptr<double>(), dbias.mutable_data_ptr<double>());
  };
  if (u.scalar_type() == at::kFloat) {
    run(float{});
  } else {
    run(double{});
  }
  return {du, ddelta, dz, dB, dC, dA, dD, dbias};
}

}  // namespace
}  // namespace mmmt_scan

// Registered as plain operators (torch.ops.mmmt_scan.*) rather than a pybind module: the
// headers needed are a fraction of <torch/extension.h>, which keeps the one-off JIT build short.
TORCH_LIBRARY(mmmt_scan, m) {
  m.def(
      "fwd(Tensor u, Tensor delta, Tensor A, Tensor Bt, Tensor Ct, Tensor? D, Tensor? z, "
      "Tensor? delta_bias, bool delta_softplus, int chunk, bool save_checkpoints) "
      "-> (Tensor, Tensor, Tensor)",
      &mmmt_scan::scan_fwd);
  m.def(
      "bwd(Tensor u, Tensor delta, Tensor A, Tensor Bt, Tensor Ct, Tensor? D, Tensor? z, "
      "Tensor? delta_bias, bool delta_softplus, int chunk, Tensor checkpoints, Tensor dout, "
      "Tensor? dlast, int slices) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
      &mmmt_scan::scan_bwd);
}
