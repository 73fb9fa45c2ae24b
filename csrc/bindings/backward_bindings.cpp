// pybind11 bindings of the backward passes (csrc/backward.h): argument checks and plumbing;
// the Python side (python/fastsoftmax/_backward.py) moves the axis and makes rows contiguous.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "backward.h"
#include "bindings/dtype_of.h"
#include "bindings/release_gil.h"
#include "bindings/tier_of.h"
#include "dispatch/registry.h"

namespace py = pybind11;

namespace fastsoftmax {

namespace {


// [lo, hi) of a contiguous array's bytes.
bool bytes_meet(const py::array& a, const py::array& b) {
  const auto lo_a = reinterpret_cast<std::uintptr_t>(a.data()), lo_b = reinterpret_cast<std::uintptr_t>(b.data());
  const auto hi_a = lo_a + std::uintptr_t(a.nbytes()), hi_b = lo_b + std::uintptr_t(b.nbytes());
  return a.nbytes() && b.nbytes() && lo_a < hi_b && lo_b < hi_a;
}

// y, g, out: C-contiguous arrays of one shape (ndim >= 1) and one dtype; out writable, and
// either y or g itself or apart from both. Rows: the last axis.
void backward_py(bool log, const py::array& y, const py::array& g, py::array& out, const py::object& isa,
                 int threads) {
  const DType d = dtype_of(y, "y");
  if (dtype_of(g, "g") != d || dtype_of(out, "out") != d)
    throw py::type_error("y, g and out must have the same dtype");
  if (y.ndim() < 1 || g.ndim() != y.ndim() || out.ndim() != y.ndim())
    throw py::value_error("y, g and out must have the same shape (ndim >= 1)");
  for (py::ssize_t k = 0; k < y.ndim(); ++k)
    if (g.shape(k) != y.shape(k) || out.shape(k) != y.shape(k))
      throw py::value_error("y, g and out must have the same shape");
  const auto contiguous = [](const py::array& a) { return (a.flags() & py::array::c_style) != 0; };
  if (!contiguous(y) || !contiguous(g) || !contiguous(out)) throw py::value_error("y, g and out must be C-contiguous");
  if (!out.writeable()) throw py::value_error("out is read-only");
  const auto same = [](const py::array& a, const py::array& b) { return a.data() == b.data(); };
  if ((!same(out, y) && bytes_meet(out, y)) || (!same(out, g) && bytes_meet(out, g)))
    throw py::value_error("out must be y, g, or memory apart from both");
  if (threads < 0) throw py::value_error("threads must be >= 0");
  const Tier tier = tier_of(isa);
  const std::size_t n = static_cast<std::size_t>(y.shape(y.ndim() - 1));
  const std::size_t rows = n ? static_cast<std::size_t>(y.size()) / n : 0;
  const void* yp = y.data();
  const void* gp = g.data();
  void* op = out.mutable_data();
  without_gil([&] { backward_rows(tier, d, log, rows, n, yp, gp, op, threads); });
}

void backward_pattern_py(const py::array& y, const py::array& g, py::array& out, bool log, const py::object& isa) {
  const DType d = dtype_of(y, "y");
  if (dtype_of(g, "g") != d || dtype_of(out, "out") != d)
    throw py::type_error("y, g and out must have the same dtype");
  const auto ok = [&](const py::array& a) {
    if (!(a.flags() & py::array::c_style) || a.ndim() != y.ndim() || a.ndim() < 1) return false;
    for (py::ssize_t k = 0; k < a.ndim(); ++k)
      if (a.shape(k) != y.shape(k)) return false;
    return true;
  };
  if (!ok(y) || !ok(g) || !ok(out) || !out.writeable() || bytes_meet(out, y) || bytes_meet(out, g))
    throw py::value_error("the pattern takes three C-contiguous arrays of one shape, out writable and apart");
  const Tier tier = tier_of(isa);
  const std::size_t n = static_cast<std::size_t>(y.shape(y.ndim() - 1));
  const std::size_t rows = n ? static_cast<std::size_t>(y.size()) / n : 0;
  const std::size_t row_bytes = n * static_cast<std::size_t>(y.itemsize());
  const char* yp = static_cast<const char*>(y.data());
  const char* gp = static_cast<const char*>(g.data());
  char* op = static_cast<char*>(out.mutable_data());
  without_gil([&] {  // row by row, as the kernels walk them (one thread)
    for (std::size_t r = 0; r < rows; ++r)
      backward_pattern(tier, d, log, n, yp + r * row_bytes, gp + r * row_bytes, op + r * row_bytes);
  });
}

}  // namespace

void bind_backward(py::module_& m) {
  m.def("softmax_backward", [](const py::array& y, const py::array& g, py::array& out, const py::object& isa,
                               int threads) { backward_py(false, y, g, out, isa, threads); },
        py::arg("y"), py::arg("g"), py::arg("out"), py::arg("isa") = py::none(), py::arg("threads") = 0,
        "out = y * (g - sum(g * y)) along the last axis (C-contiguous arrays of one shape and dtype)");
  m.def("log_softmax_backward", [](const py::array& y, const py::array& g, py::array& out, const py::object& isa,
                                   int threads) { backward_py(true, y, g, out, isa, threads); },
        py::arg("y"), py::arg("g"), py::arg("out"), py::arg("isa") = py::none(), py::arg("threads") = 0,
        "out = g - exp(y) * sum(g) along the last axis (C-contiguous arrays of one shape and dtype)");
  m.def("backward_pattern", &backward_pattern_py, py::arg("y"), py::arg("g"), py::arg("out"),
        py::arg("log") = false, py::arg("isa") = py::none(),
        "The memory-only pattern of the backward of each row (last axis; read y and g, read them again and write out)");
}

}  // namespace fastsoftmax
