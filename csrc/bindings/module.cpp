// pybind11 bindings: argument plumbing only. The GIL is released around every kernel call,
// by without_gil (release_gil.h: not pybind11's gil_scoped_release, which aborts the process
// when a daemon thread is inside a call at interpreter exit).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(FASTSOFTMAX_X86)
#include <xmmintrin.h>
#endif

#include "bindings/dtype_of.h"
#include "bindings/release_gil.h"
#include "bindings/tier_of.h"
#include "dispatch/cpu_features.h"
#include "dispatch/registry.h"
#include "overlap.h"
#include "select_kernel.h"
#include "softmax.h"
#include "threadpool.h"

namespace py = pybind11;
using namespace fastsoftmax;

namespace fastsoftmax { void bind_sampling(py::module_& m); }  // sampling_bindings.cpp
namespace fastsoftmax { void bind_backward(py::module_& m); }  // backward_bindings.cpp

namespace {


DType dtype_named(const std::string& name) {
  DType d;
  if (!dtype_from_name(name, &d))
    throw py::value_error("dtype must be 'float32', 'float64', 'float16' or 'bfloat16', got " + quoted(name));
  return d;
}

// select_kernel for the bindings' arguments: the tier's errors first, then an op or
// algorithm that is not one.
const KernelEntry& resolve_kernel(const std::string& op, const std::string& algorithm, DType dtype,
                                  const py::object& isa, std::size_t row_length, std::size_t rows = 1) {
  std::string name;
  const std::string* requested = requested_isa(isa, &name);
  Op op_id;
  AlgorithmChoice choice;
  if (!op_from_name(op, &op_id) || !algorithm_choice_from_name(algorithm, &choice)) {
    tier_of(isa);
    throw py::value_error("no kernel for op=" + quoted(op) + ", algorithm=" + quoted(algorithm));
  }
  TierRefusal why;
  const KernelEntry* k = select_kernel(requested, dtype, op_id, choice, row_length, &why, rows);
  if (!k) refuse_tier(why, name);
  return *k;
}

py::dict features_dict(const CpuFeatures& f) {
  py::dict d;
#define FSM_FEATURE_ITEM(feature) d[#feature] = f.feature;
  FASTSOFTMAX_FOR_EACH_CPU_FEATURE(FSM_FEATURE_ITEM)
#undef FSM_FEATURE_ITEM
  return d;
}

CpuFeatures features_from_dict(const py::dict& d) {
  CpuFeatures f;
  auto get = [&](const char* key) { return d.contains(key) ? d[key].cast<bool>() : false; };
#define FSM_FEATURE_GET(feature) f.feature = get(#feature);
  FASTSOFTMAX_FOR_EACH_CPU_FEATURE(FSM_FEATURE_GET)
#undef FSM_FEATURE_GET
  for (auto item : d) {
    const std::string key = item.first.cast<std::string>();
#define FSM_FEATURE_IS(feature) key == #feature ||
    if (!(FASTSOFTMAX_FOR_EACH_CPU_FEATURE(FSM_FEATURE_IS) false))
      throw py::key_error("unknown CPU feature " + quoted(key));
#undef FSM_FEATURE_IS
  }
  return f;
}

// Whether an array's elements overlap one another (overlap.h); `unknown` counts as yes.
SelfOverlap overlap_of(int nd, const py::ssize_t* shape, const py::ssize_t* strides, py::ssize_t itemsize) {
  constexpr int kMaxDims = 64;
  if (nd > kMaxDims) return SelfOverlap::unknown;
  std::int64_t sh[kMaxDims], st[kMaxDims];
  for (int d = 0; d < nd; ++d) {
    sh[d] = shape[d];
    st[d] = strides[d];
  }
  return self_overlap(nd, sh, st, itemsize);
}

py::object overlaps_itself(const py::array& a) {
  const SelfOverlap o = overlap_of(static_cast<int>(a.ndim()), a.shape(), a.strides(), a.itemsize());
  return o == SelfOverlap::unknown ? py::object(py::none()) : py::bool_(o == SelfOverlap::yes);
}

// The public functions refuse such an out= first (_api.py: _check_out); this keeps the
// kernels from ever writing one.
void require_no_self_overlap(const py::array& out) {
  switch (overlap_of(static_cast<int>(out.ndim()), out.shape(), out.strides(), out.itemsize())) {
    case SelfOverlap::no: return;
    case SelfOverlap::yes: throw py::value_error("out overlaps itself: it cannot hold one result per element");
    case SelfOverlap::unknown:
      throw py::value_error("out's strides are too irregular to tell whether its elements overlap each other");
  }
}

// The number of rows of a job (auto's batch rule): whatever their layout, so that a view,
// a non-last axis and the C API get the kernel, and so the bits, of the C-order call.
std::size_t rows_of_job(int ndim, const std::int64_t* shape) {
  std::size_t rows = 1;
  for (int d = 0; d + 1 < ndim; ++d) rows *= static_cast<std::size_t>(shape[d]);
  return rows;
}

void run(const std::string& op, const std::string& algorithm, const py::array& x, py::array& out,
         const py::object& isa, int threads) {
  const DType dt = dtype_of(x, "x");
  if (dtype_of(out, "out") != dt) throw py::type_error("x and out must have the same dtype");
  if (x.ndim() != out.ndim() || x.ndim() < 1) throw py::value_error("x and out must have the same shape (ndim >= 1)");
  constexpr py::ssize_t kMaxDims = 64;  // NumPy's NPY_MAXDIMS (32 before NumPy 2)
  if (x.ndim() > kMaxDims) throw py::value_error("too many dimensions");
  std::int64_t shape[kMaxDims], xs[kMaxDims], ys[kMaxDims];
  for (py::ssize_t d = 0; d < x.ndim(); ++d) {
    if (x.shape(d) != out.shape(d)) throw py::value_error("x and out must have the same shape");
    shape[d] = x.shape(d);
    xs[d] = x.strides(d);
    ys[d] = out.strides(d);
  }
  require_no_self_overlap(out);
  const int ndim = static_cast<int>(x.ndim());
  const KernelEntry& k =
      resolve_kernel(op, algorithm, dt, isa, static_cast<std::size_t>(shape[ndim - 1]), rows_of_job(ndim, shape));
  const char* xp = static_cast<const char*>(x.data());
  char* yp = static_cast<char*>(out.mutable_data());
  without_gil([&] { run_rows(k, ndim, shape, xp, xs, yp, ys, threads); });
}

// Shapes and byte strides of an array, for the row walkers.
struct Geometry {
  static constexpr py::ssize_t kMaxDims = 64;
  int ndim;
  std::int64_t shape[kMaxDims], strides[kMaxDims];
  explicit Geometry(const py::array& a) : ndim(static_cast<int>(a.ndim())) {
    if (a.ndim() < 1 || a.ndim() > kMaxDims) throw py::value_error("arrays must have 1 to 64 dimensions");
    for (int d = 0; d < ndim; ++d) {
      shape[d] = a.shape(d);
      strides[d] = a.strides(d);
    }
  }
};

py::array_t<double> stats_array(const Geometry& g) {
  std::vector<py::ssize_t> outer(g.shape, g.shape + g.ndim - 1);
  return py::array_t<double>(outer);
}

// Per-row two-pass statistics of x's last axis: (m, e, shift), float64 arrays of x.shape[:-1].
py::tuple row_stats_py(const py::array& x, const py::object& isa, int threads) {
  const DType dt = dtype_of(x, "x");
  const Geometry g(x);
  const KernelEntry& k = resolve_kernel("softmax", "two-pass", dt, isa, static_cast<std::size_t>(g.shape[g.ndim - 1]));
  py::array_t<double> m = stats_array(g), e = stats_array(g), shift = stats_array(g);
  double* mp = m.mutable_data();
  double* ep = e.mutable_data();
  double* sp = shift.mutable_data();
  const char* xp = static_cast<const char*>(x.data());
  without_gil([&] { row_stats(k, g.ndim, g.shape, xp, g.strides, mp, ep, sp, threads); });
  return py::make_tuple(m, e, shift);
}

void from_stats_py(const std::string& op, const py::array& x, py::array& out, const py::array_t<double, py::array::c_style>& m,
                   const py::array_t<double, py::array::c_style>& e, const py::array_t<double, py::array::c_style>& shift,
                   const py::object& isa, int threads) {
  const DType dt = dtype_of(x, "x");
  if (dtype_of(out, "out") != dt) throw py::type_error("x and out must have the same dtype");
  const Geometry gx(x), gy(out);
  if (gx.ndim != gy.ndim || !std::equal(gx.shape, gx.shape + gx.ndim, gy.shape))
    throw py::value_error("x and out must have the same shape");
  std::size_t rows = 1;
  for (int d = 0; d + 1 < gx.ndim; ++d) rows *= static_cast<std::size_t>(gx.shape[d]);
  if (static_cast<std::size_t>(m.size()) != rows || static_cast<std::size_t>(e.size()) != rows ||
      static_cast<std::size_t>(shift.size()) != rows)
    throw py::value_error("m, e and shift must hold one value per row of x");
  require_no_self_overlap(out);
  const KernelEntry& k = resolve_kernel(op, "two-pass", dt, isa, static_cast<std::size_t>(gx.shape[gx.ndim - 1]));
  const char* xp = static_cast<const char*>(x.data());
  char* yp = static_cast<char*>(out.mutable_data());
  const double* mp = m.data();
  const double* ep = e.data();
  const double* sp = shift.data();
  without_gil([&] { rows_from_stats(k, gx.ndim, gx.shape, xp, gx.strides, yp, gy.strides, mp, ep, sp, threads); });
}

double run_pattern(const std::string& pattern, const py::array& x, py::array& out, const py::object& isa) {
  const DType dt = dtype_of(x, "x");
  if (dtype_of(out, "out") != dt) throw py::type_error("x and out must have the same dtype");
  const auto misaligned = [](const py::array& a) {
    return reinterpret_cast<std::uintptr_t>(a.data()) % static_cast<std::uintptr_t>(a.itemsize()) != 0;
  };
  if (!(x.flags() & py::array::c_style) || !(out.flags() & py::array::c_style) || x.size() != out.size() ||
      misaligned(x) || misaligned(out))
    throw py::value_error("patterns take two C-contiguous, aligned arrays of the same size");
  const PatternEntry* k = find_pattern(tier_of(isa), dt, pattern);
  if (!k) throw py::value_error("unknown memory pattern '" + pattern + "'");
  const std::size_t n = static_cast<std::size_t>(x.size());
  const void* xp = x.data();
  void* yp = out.mutable_data();
  return without_gil([&] { return k->fn(n, xp, yp); });
}

// ---- the small-call fast path -------------------------------------------------------------
// softmax(x) / log_softmax(x) of the common kind -- an exact ndarray of float32, float64 or
// float16 in native order, along its last axis (or axis=None on a C-contiguous array: one
// row of every element), a new result or a same-dtype out that cannot overlap x nor
// itself, the active tier -- decided and run without pybind11's argument conversion
// (METH_FASTCALL, NumPy's structs read directly). Anything else returns NotImplemented
// and the Python code takes the call, with all its checks and error messages.
// Arguments: (x, axis, out, dtype, algorithm, isa, threads).
constexpr std::size_t kReleaseGilElements = std::size_t{1} << 14;

// fn() for a fast-path call over `size` elements: without the GIL where the work pays for
// releasing and taking it back.
template <class Fn>
void run_fast(std::size_t size, Fn&& fn) {
  if (size >= kReleaseGilElements) without_gil(fn);
  else fn();
}

// algorithm= as a str naming one of kernels.inc's algorithms, or "auto"; false otherwise.
bool fast_algorithm(PyObject* a, AlgorithmChoice* choice) {
  if (!PyUnicode_CheckExact(a)) return false;
  if (PyUnicode_CompareWithASCIIString(a, kAutoName) == 0) {
    *choice = std::nullopt;
    return true;
  }
  for (int i = 0; i < kAlgorithms; ++i)
    if (PyUnicode_CompareWithASCIIString(a, algorithm_name(Algorithm(i))) == 0) {
      *choice = Algorithm(i);
      return true;
    }
  return false;
}

bool fast_dtype(PyObject* descr, DType* dt) {
  const auto* d = py::detail::array_descriptor_proxy(descr);
  if (d->byteorder == '>') return false;  // non-native on the little-endian x86-64 / arm64
  switch (d->type_num) {
    case 11: *dt = DType::f32; return true;  // NPY_FLOAT
    case 12: *dt = DType::f64; return true;  // NPY_DOUBLE
    case 23: *dt = DType::f16; return true;  // NPY_HALF
    default:
      if (d->type_num < 256 || !is_bfloat16(descr)) return false;  // NPY_USERDEF: ml_dtypes' types
      *dt = DType::bf16;
      return true;
  }
}

// Byte range [lo, hi) an array's elements span.
void extent(const py::detail::PyArray_Proxy* a, std::size_t itemsize, std::uintptr_t* lo, std::uintptr_t* hi) {
  std::intptr_t first = 0, last = 0;
  for (int d = 0; d < a->nd; ++d) {
    const std::intptr_t span = std::intptr_t(a->dimensions[d] - 1) * a->strides[d];
    (span < 0 ? first : last) += span;
  }
  *lo = reinterpret_cast<std::uintptr_t>(a->data) + first;
  *hi = reinterpret_cast<std::uintptr_t>(a->data) + last + itemsize;
}

// PyArray_NewLikeArray(x, NPY_KEEPORDER, NULL, 0): an uninitialised base-class array of
// x's shape and dtype in x's memory order. (Slot 277 of NumPy's C API table, stable since
// NumPy 1.6; pybind11's npy_api does not list it.)
using NewLike = PyObject* (*)(PyObject*, int, PyObject*, int);
NewLike new_like_function() {
  static const NewLike fn = [] {
    const py::module_ m = py::detail::import_numpy_core_submodule("multiarray");
    void** api = static_cast<void**>(PyCapsule_GetPointer(m.attr("_ARRAY_API").ptr(), nullptr));
    if (!api) throw py::error_already_set();
    return reinterpret_cast<NewLike>(api[277]);
  }();
  return fn;
}

PyObject* new_like(PyObject* x) {
  constexpr int kKeepOrder = 2;  // NPY_KEEPORDER
  return new_like_function()(x, kKeepOrder, nullptr, 0);
}

// The fast path's threads= (None, or an int in [1, kMaxThreads]) into *n; false: not here.
bool fast_threads(PyObject* threads, long* n) {
  if (threads == Py_None) return true;
  if (!PyLong_CheckExact(threads)) return false;
  *n = PyLong_AsLong(threads);
  if (*n < 1 || *n > kMaxThreads) {
    PyErr_Clear();
    return false;
  }
  return true;
}

constexpr int kCContiguous = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;

// Whether the fast path takes axis= over x: None over a 1-D or C-contiguous x (one row), or
// the last axis as an int.
bool fast_axis(PyObject* axis, const py::detail::PyArray_Proxy* xa) {
  if (axis == Py_None) return xa->nd == 1 || (xa->flags & kCContiguous);
  if (!PyLong_CheckExact(axis)) return false;
  const long a = PyLong_AsLong(axis);
  if (a == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  return a == -1 || a == xa->nd - 1;
}

// Whether the fast path may write out= for x: an ndarray of x's shape and dtype dt,
// writeable, whose elements do not overlap each other nor (unless it is x) x's; C-contiguous
// too when all of x is one row (whole).
bool fast_out(PyObject* x, PyObject* out, DType dt, bool whole) {
  if (Py_TYPE(out) != py::detail::npy_api::get().PyArray_Type_) return false;
  const auto* xa = py::detail::array_proxy(x);
  const auto* oa = py::detail::array_proxy(out);
  const std::size_t item = itemsize(dt);
  DType odt;
  if (oa->nd != xa->nd || !fast_dtype(oa->descr, &odt) || odt != dt ||
      !(oa->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
    return false;
  for (int d = 0; d < xa->nd; ++d)
    if (oa->dimensions[d] != xa->dimensions[d]) return false;
  // An out whose elements overlap each other (or may): the Python path refuses it.
  if (overlap_of(oa->nd, oa->dimensions, oa->strides, py::ssize_t(item)) != SelfOverlap::no) return false;
  if (whole && xa->nd != 1 && !(oa->flags & kCContiguous)) return false;
  if (out != x) {  // any possible overlap: the Python path decides exactly
    std::uintptr_t xl, xh, ol, oh;
    extent(xa, item, &xl, &xh);
    extent(oa, item, &ol, &oh);
    if (xl < oh && ol < xh) return false;
  }
  return true;
}

// Inside a catch block of a fast path: the exception being handled as the Python error
// it stands for (a bad FASTSOFTMAX_ISA: ValueError); null, for the caller to return.
PyObject* raise_as_python_error() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
  }
  return nullptr;
}

PyObject* fast_call(bool log, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 7) {
    PyErr_SetString(PyExc_TypeError, "fast path: 7 arguments expected");
    return nullptr;
  }
  PyObject *x = args[0], *axis = args[1], *out = args[2], *dtype = args[3], *algorithm = args[4], *isa = args[5],
           *threads = args[6];
  auto& api = py::detail::npy_api::get();
  const auto not_here = [] { Py_RETURN_NOTIMPLEMENTED; };
  if (Py_TYPE(x) != api.PyArray_Type_ || dtype != Py_None || isa != Py_None) return not_here();
  const auto* xa = py::detail::array_proxy(x);
  DType dt;
  if (xa->nd < 1 || xa->dimensions[xa->nd - 1] == 0 || !fast_dtype(xa->descr, &dt)) return not_here();
  AlgorithmChoice alg;
  if (!fast_algorithm(algorithm, &alg)) return not_here();
  long nthreads = 0;
  if (!fast_threads(threads, &nthreads)) return not_here();
  // axis=None: all elements form one row -- one contiguous row when x is C-contiguous (the
  // common softmax(x) on a (1, n) or (b, n) array); other layouts take the Python path.
  const bool whole = axis == Py_None;
  if (!fast_axis(axis, xa)) return not_here();
  const std::size_t item = itemsize(dt);
  try {
    py::object result;
    if (out == Py_None) {
      // NumPy's order="K": x's memory order (Fortran in, Fortran out), as np.exp(x).
      result = py::reinterpret_steal<py::object>(new_like(x));
      if (!result) return nullptr;
    } else {
      if (!fast_out(x, out, dt, whole)) return not_here();
      result = py::reinterpret_borrow<py::object>(out);
    }
    auto* ya = py::detail::array_proxy(result.ptr());
    int nd = xa->nd;
    std::int64_t shape[Geometry::kMaxDims], xs[Geometry::kMaxDims], ys[Geometry::kMaxDims];
    if (nd > Geometry::kMaxDims) return not_here();
    std::size_t size = 1;
    for (int d = 0; d < nd; ++d) {
      shape[d] = xa->dimensions[d];
      xs[d] = xa->strides[d];
      ys[d] = ya->strides[d];
      size *= static_cast<std::size_t>(shape[d]);
    }
    if (whole && size == 0) return not_here();  // over no elements: the Python path raises
    if (whole && nd != 1) {  // both C-contiguous (checked above): one row of every element
      nd = 1;
      shape[0] = std::int64_t(size);
      xs[0] = ys[0] = std::int64_t(item);
    }
    TierRefusal refused;  // the active tier is never refused
    const KernelEntry& k =
        *select_kernel(nullptr, dt, log ? Op::log_softmax : Op::softmax, alg, std::size_t(shape[nd - 1]), &refused,
                       rows_of_job(nd, shape));
    run_fast(size, [&] { run_rows(k, nd, shape, xa->data, xs, ya->data, ys, int(nthreads)); });
    return result.release().ptr();
  } catch (...) {
    return raise_as_python_error();
  }
}

// logsumexp(x) of the common kind -- an exact ndarray of float32 or float64 in native order,
// over its last axis (or axis=None over a 1-D or C-contiguous array), keepdims a bool, no
// out, dtype or b, no return_sign, the active tier -- in C; anything else NotImplemented.
// The same statistics and the same logsumexp_of_stats as the Python path, so the same bits.
// Arguments: (x, axis, keepdims, out, dtype, b, return_sign, isa, threads).
PyObject* fast_logsumexp(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 9) {
    PyErr_SetString(PyExc_TypeError, "fast path: 9 arguments expected");
    return nullptr;
  }
  PyObject *x = args[0], *axis = args[1], *keepdims = args[2], *threads = args[8];
  auto& api = py::detail::npy_api::get();
  const auto not_here = [] { Py_RETURN_NOTIMPLEMENTED; };
  if (Py_TYPE(x) != api.PyArray_Type_ || (keepdims != Py_True && keepdims != Py_False)) return not_here();
  for (int i = 3; i < 8; ++i)
    if (args[i] != (i == 6 ? Py_False : Py_None)) return not_here();
  const auto* xa = py::detail::array_proxy(x);
  DType dt;
  if (xa->nd < 1 || xa->nd > Geometry::kMaxDims || !fast_dtype(xa->descr, &dt) ||
      (dt != DType::f32 && dt != DType::f64))
    return not_here();
  long nthreads = 0;
  if (!fast_threads(threads, &nthreads) || !fast_axis(axis, xa)) return not_here();
  int nd = xa->nd;
  std::int64_t shape[Geometry::kMaxDims], xs[Geometry::kMaxDims];
  std::size_t size = 1;
  for (int d = 0; d < nd; ++d) {
    shape[d] = xa->dimensions[d];
    xs[d] = xa->strides[d];
    size *= static_cast<std::size_t>(shape[d]);
  }
  if (size == 0) return not_here();  // empty rows or no rows: the Python path
  // The result's shape: x's without its last axis (axis=None: without all), or with
  // length-one axes in their place (keepdims).
  std::vector<py::ssize_t> res_shape;
  const bool whole = axis == Py_None;
  for (int d = 0; d < nd; ++d)
    if (keepdims == Py_True) res_shape.push_back(whole || d == nd - 1 ? 1 : shape[d]);
    else if (!whole && d < nd - 1) res_shape.push_back(shape[d]);
  if (whole && nd != 1) {  // C-contiguous (fast_axis): one row of every element
    nd = 1;
    shape[0] = std::int64_t(size);
    xs[0] = std::int64_t(itemsize(dt));
  }
  try {
    const std::size_t rows = size / std::size_t(shape[nd - 1]);
    std::vector<double> stats(3 * rows);
    double *m = stats.data(), *e = m + rows, *shift = e + rows;
    TierRefusal refused;  // the active tier is never refused
    const KernelEntry& k = *select_kernel(nullptr, dt, Op::softmax, Algorithm::two_pass, std::size_t(shape[nd - 1]), &refused);
    run_fast(size, [&] { row_stats(k, nd, shape, xa->data, xs, m, e, shift, int(nthreads)); });
    py::array result(dt == DType::f32 ? py::dtype::of<float>() : py::dtype::of<double>(), res_shape);
    void* out = result.mutable_data();
    for (std::size_t r = 0; r < rows; ++r) {
      const double lse = logsumexp_of_stats(m[r], e[r], shift[r]);
      if (dt == DType::f32) static_cast<float*>(out)[r] = static_cast<float>(lse);
      else static_cast<double*>(out)[r] = lse;
    }
    if (res_shape.empty()) return py::object(result[py::tuple()]).release().ptr();  // a NumPy scalar, as SciPy
    return result.release().ptr();
  } catch (...) {
    return raise_as_python_error();
  }
}

PyObject* fast_softmax(PyObject*, PyObject* const* args, Py_ssize_t nargs) { return fast_call(false, args, nargs); }
PyObject* fast_log_softmax(PyObject*, PyObject* const* args, Py_ssize_t nargs) { return fast_call(true, args, nargs); }

PyMethodDef fast_defs[] = {
    {"fast_softmax", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(&fast_softmax)), METH_FASTCALL,
     "fast_softmax(x, axis, out, dtype, algorithm, isa, threads): the result, or NotImplemented"},
    {"fast_log_softmax", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(&fast_log_softmax)),
     METH_FASTCALL, "fast_log_softmax(x, axis, out, dtype, algorithm, isa, threads): the result, or NotImplemented"},
    {"fast_logsumexp", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(&fast_logsumexp)),
     METH_FASTCALL,
     "fast_logsumexp(x, axis, keepdims, out, dtype, b, return_sign, isa, threads): the result, or NotImplemented"},
};

// kernels() and patterns(): name, isa, dtype, what describe(d, entry) adds, supported.
template <class Entry, class Describe>
py::list entry_list(const std::vector<Entry>& entries, Describe describe) {
  py::list l;
  for (const Entry& e : entries) {
    py::dict d;
    d["name"] = e.name;
    d["isa"] = tier_name(e.tier);
    d["dtype"] = dtype_name(e.dtype);
    describe(d, e);
    d["supported"] = tier_runnable(e.tier, cpu_features());
    l.append(d);
  }
  return l;
}

}  // namespace

// The pool's thread count as plain C symbols, for threadpoolctl's controller (ctypes).
#if defined(_WIN32)
#define FSM_EXPORT __declspec(dllexport)
#else
#define FSM_EXPORT __attribute__((visibility("default")))
#endif
extern "C" FSM_EXPORT int fastsoftmax_py_get_num_threads() {
  try {
    return get_num_threads();
  } catch (...) {
    return 0;
  }
}
extern "C" FSM_EXPORT int fastsoftmax_py_set_num_threads(int n) {
  if (n < 0 || n > kMaxThreads) return 1;
  set_num_threads(n);
  return 0;
}

// Long by nature: one list of the module's m.def bindings (sampling and backward have files of their own).
PYBIND11_MODULE(_core, m) {
  m.doc() = "fastsoftmax native core (use the functions of the fastsoftmax package)";
  // NumPy's C API table, looked up now rather than at the first call (it imports NumPy's
  // core module): a first call made while the interpreter finalizes -- from a __del__ --
  // cannot import anything, and the fast path reads the table outside its try block.
  py::detail::npy_api::get();
  new_like_function();  // likewise
  m.def("run", &run, py::arg("op"), py::arg("algorithm"), py::arg("x"), py::arg("out"), py::arg("isa") = py::none(),
        py::arg("threads") = 0,
        "Run a kernel over the last axis of x into out (same shape and dtype, any strides); threads <= 0: default.");
  m.def("stats_logsumexp", py::vectorize(&logsumexp_of_stats), py::arg("m"), py::arg("e"), py::arg("shift"),
        "log(m * 2^e * e^shift) elementwise in float64 (logsumexp from row statistics)");
  m.def("row_stats", &row_stats_py, py::arg("x"), py::arg("isa") = py::none(), py::arg("threads") = 0,
        "Two-pass statistics of every row of x's last axis: (m, e, shift) with sum(exp(row)) = m * 2**e * exp(shift).");
  m.def("from_stats", &from_stats_py, py::arg("op"), py::arg("x"), py::arg("out"), py::arg("m"), py::arg("e"),
        py::arg("shift"), py::arg("isa") = py::none(), py::arg("threads") = 0,
        "Pass 2 of softmax/log_softmax over x's last axis from per-row statistics (m, e, shift).");
  for (PyMethodDef& def : fast_defs)
    m.add_object(def.ml_name, py::reinterpret_steal<py::object>(PyCFunction_NewEx(&def, nullptr, m.ptr())));
  m.def("overlaps_itself", &overlaps_itself, py::arg("a"),
        "Whether two elements of a share memory: True, False, or None where the bounded exact search gave up.");
  m.def("get_num_threads", &get_num_threads);
  m.def("last_requested_threads", &last_requested_threads,
        "threads= of this thread's last kernel run (0: the default), for tests");
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("default_num_threads", &default_num_threads);
  m.attr("MAX_THREADS") = kMaxThreads;
  m.def("swap_thread_local_threads", &swap_thread_local_threads, py::arg("n"),
        "Set this thread's override of the default thread count (0: none); returns the previous one");
  m.def("thread_config", [](const py::object& root) {
    const ThreadConfig c = root.is_none() ? thread_config() : make_thread_config(root.cast<std::string>());
    py::dict d;
    d["threads"] = c.threads; d["source"] = c.source; d["error"] = c.error; d["warning"] = c.warning;
    d["affinity_cpus"] = c.affinity_cpus; d["cgroup_cpus"] = c.cgroup_cpus;
    return d;
  }, py::arg("root") = py::none(),
  "How the default thread count was found (parsed once, at the first use); with root, found afresh with the cgroup files under root");
  m.def("parse_thread_count", [](const std::string& name, const std::string& value, bool omp_list) {
    std::string error;
    const int n = parse_thread_count(name.c_str(), value.c_str(), omp_list, &error);
    if (n <= 0) throw py::value_error(error);
    return n;
  }, py::arg("name"), py::arg("value"), py::arg("omp_list") = false);
  m.def("cgroup_cpu_quota", &cgroup_cpu_quota, py::arg("root") = "",
        "CPU quota of this process's cgroup, rounded up (0: none); root prefixes every path read");
  m.def("handoff_costs", [] {
    const HandoffCosts h = handoff_costs();
    py::dict d;
    d["parked_ns"] = h.parked_ns; d["spinning_ns"] = h.spinning_ns;
    d["measured"] = h.measured; d["overridden"] = h.overridden;
    return d;
  });
  m.def("set_handoff_costs", &set_handoff_costs, py::arg("parked_ns"), py::arg("spinning_ns"),
        "Fix the hand-off costs the thread planner uses (tests, measurements); negative: measure them");
  m.def("useful_threads", &useful_threads, py::arg("requested"), py::arg("work_ns"));
  m.def("cost_scale", &cost_scale,
        "The thread planner's factor on its per-element cost model: measured once (>= 1), or as set");
  m.def("set_cost_scale", &set_cost_scale, py::arg("scale"),
        "Fix the thread planner's cost factor (tests, measurements); negative: this machine's measured one");
  m.def("pool_info", [] {
    const PoolInfo i = pool_info();
    py::dict d;
    d["pools_created"] = i.pools_created; d["workers"] = i.workers; d["spinning"] = i.spinning;
    d["wakes"] = i.wakes; d["max_pool_threads"] = max_pool_threads();
    d["fork_generation"] = fork_generation();
    return d;
  });
  m.def("after_fork_in_child", &after_fork_in_child,
        "What the pthread_atfork child handler does (for tests): the next parallel call gets a fresh pool");
  m.def("run_pattern", &run_pattern, py::arg("pattern"), py::arg("x"), py::arg("out"), py::arg("isa") = py::none(),
        "Run a memory-only roofline pattern over contiguous x/out; returns a checksum.");
  m.def("kernels", [] {
    return entry_list(all_kernels(), [](py::dict& d, const KernelEntry& k) {
      d["op"] = op_name(k.op_id);
      d["algorithm"] = algorithm_name(k.algorithm_id);
    });
  });
  m.def("patterns", [] {
    return entry_list(all_patterns(), [](py::dict& d, const PatternEntry& p) { d["pattern"] = p.pattern; });
  });
  m.def("algorithms", [] {
    std::vector<std::string> v;
    for (int i = 0; i < kAlgorithms; ++i) v.push_back(algorithm_name(Algorithm(i)));
    return v;
  }, "The kernels' algorithm= names (kernels.inc's order; \"auto\" picks one of them)");
  m.def("pattern_names", &pattern_names, "The memory-only patterns' names (kernels.inc's order)");
  m.def("dtype_names", [] {
    std::vector<std::string> v;
    for (int i = 0; i < kDTypes; ++i) v.push_back(dtype_name(DType(i)));
    return v;
  }, "The kernels' dtype names (kernels.inc's order)");
  m.def("kernel_name", [](const std::string& op, const std::string& algorithm, const std::string& dtype,
                          const py::object& isa, std::size_t n, std::size_t rows) {
          return resolve_kernel(op, algorithm, dtype_named(dtype), isa, n, rows).name;
        }, py::arg("op"), py::arg("algorithm"), py::arg("dtype"), py::arg("isa") = py::none(), py::arg("n") = 1024,
        py::arg("rows") = 1, "The kernel that runs a job of `rows` rows of n elements (auto resolved as softmax() does)");
  m.def("cpu_features", [] { return features_dict(cpu_features()); });
  m.def("compiled_isas", [] { return compiled_isas(); });
  m.def("active_isa", [] {
    try { return active_isa(); } catch (const std::invalid_argument& e) { throw py::value_error(e.what()); }
  });
  m.def("select_isa", [](const py::dict& features, const py::object& cap) {
          try {
            return select_isa(features_from_dict(features), cap.is_none() ? std::string() : cap.cast<std::string>());
          } catch (const std::invalid_argument& e) { throw py::value_error(e.what()); }
        }, py::arg("features"), py::arg("cap") = py::none());
  m.def("isa_runnable", [](const std::string& isa) { return isa_runnable(isa, cpu_features()); });
  m.def("isa_cap", []() -> py::object {
    return isa_cap().empty() ? py::object(py::none()) : py::object(py::str(isa_cap()));
  }, "FASTSOFTMAX_ISA as this process read it (None: not set); isa= above it is refused");
  m.def("cache_sizes", [] {
    const CacheSizes& c = cache_sizes();
    py::dict d;
    d["l1d"] = c.l1d; d["l2"] = c.l2; d["l3"] = c.l3; d["source"] = c.source;
    return d;
  });
  m.def("cpu_brand", &cpu_brand);
  m.def("avx512_bf16_rounding", &avx512_bf16_rounding,
        "True when the avx512 tier's bfloat16 kernels round with vcvtneps2bf16 (AVX512-BF16)");
  m.def("auto_algorithms", [] { return py::make_tuple(algorithm_name(kAutoInCache), algorithm_name(kAutoBeyondCache)); },
        "The two algorithms auto chooses between: (for rows that fit the cache, for rows beyond)");
  m.def("auto_algorithm", [](const std::string& dtype, std::size_t n, std::size_t rows) {
    return std::string(algorithm_name(auto_algorithm(dtype_named(dtype), n, rows)));
  }, py::arg("dtype"), py::arg("n"), py::arg("rows") = 1,
     "What auto runs for a job of `rows` rows of n elements");
  m.def("auto_reload_limit", [](const std::string& dtype) {
    const DType d = dtype_named(dtype);
    py::dict r;
    r["bytes"] = auto_reload_limit(d); r["builtin_bytes"] = builtin_reload_limit(d);
    r["from_profile"] = auto_reload_limit_is_set(d);
    return r;
  }, "auto's limit for dtype: three-pass reload for rows of at most 'bytes' input bytes");
  m.def("set_auto_reload_limit", [](const std::string& dtype, py::object bytes) {
    const DType d = dtype_named(dtype);
    if (bytes.is_none()) return set_auto_reload_limit(d, -1);
    const long long b = bytes.cast<long long>();
    if (b < 0) throw py::value_error("set_auto_reload_limit: bytes must be >= 0 or None (the built-in rule)");
    set_auto_reload_limit(d, b);
  }, py::arg("dtype"), py::arg("bytes"), "a machine profile's limit for dtype; None restores the built-in rule");
  m.def("prefetch_min_elements", [] { return prefetch_min_elements(); },
        "rows (and chunks of long rows) of at least this many elements are read with software prefetch");
  m.def("set_prefetch_min_elements", [](py::object elements) {
    if (elements.is_none()) return set_prefetch_min_elements(-1);
    if (!PyLong_Check(elements.ptr()) || PyBool_Check(elements.ptr()))
      throw py::type_error("set_prefetch_min_elements: elements must be an int or None (the built-in 2**16)");
    int overflow = 0;
    const long long n = PyLong_AsLongLongAndOverflow(elements.ptr(), &overflow);
    if (overflow < 0 || (overflow == 0 && n < 0))
      throw py::value_error("set_prefetch_min_elements: elements must be >= 0 or None (the built-in 2**16)");
    set_prefetch_min_elements(overflow > 0 ? std::numeric_limits<std::int64_t>::max() : n);
  }, py::arg("elements"), "process-wide; None restores the built-in 2**16; a huge value turns prefetch off");
  m.def("ftz_daz", [] {
    py::dict d;
#if defined(FASTSOFTMAX_X86)
    const unsigned csr = _mm_getcsr();
    d["ftz"] = bool(csr & 0x8000); d["daz"] = bool(csr & 0x0040);
#else
    d["ftz"] = py::none(); d["daz"] = py::none();
#endif
    return d;
  });
  bind_sampling(m);  // sample_rows, philox4x32, philox_uniform
  bind_backward(m);  // softmax_backward, log_softmax_backward, backward_pattern
}
