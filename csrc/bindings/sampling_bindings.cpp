// pybind11 bindings of the sampler (csrc/sampling.h): argument plumbing only; the Python
// wrapper (python/fastsoftmax/_sampling.py) validates the parameters and broadcasts per-row ones.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/half.h"
#include "release_gil.h"
#include "sampling.h"

namespace py = pybind11;

namespace fastsoftmax {

namespace {

template <typename P> const P* row_values(const py::array_t<P>& a, std::size_t rows, const char* what) {
  if (a.ndim() != 1 || std::size_t(a.shape(0)) != rows || !(a.flags() & py::array::c_style))
    throw py::value_error(std::string(what) + ": one contiguous value per row expected");
  return a.data();
}

// Checks x (a C-contiguous rows x n matrix), runs the sampler over it with p (its row_stride
// set here) and returns (tokens, logprobs or None, lowest bad row or -1, error kind).
py::tuple run_sample_rows(const py::array& x, SampleParams p, bool want_logprobs, int threads) {
  const std::size_t rows = std::size_t(x.shape(0)), n = std::size_t(x.shape(1));
  p.row_stride = static_cast<std::ptrdiff_t>(n);
  py::array_t<std::int64_t> tokens(static_cast<py::ssize_t>(rows));
  py::object lp = py::none();
  double* lpp = nullptr;
  if (want_logprobs) {
    py::array_t<double> a(static_cast<py::ssize_t>(rows));
    lpp = a.mutable_data();
    lp = a;
  }
  std::int64_t* tp = tokens.mutable_data();
  std::int64_t bad = -1;
  int error = 0;
  const py::dtype d = x.dtype();
  auto run = [&](auto* typed) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(typed)>>;
    const T* xp = static_cast<const T*>(x.data());
    without_gil([&] { bad = sample_rows<T>(xp, rows, n, p, tp, lpp, threads, &error); });
  };
  if (d.equal(py::dtype::of<float>())) {
    run(static_cast<const float*>(nullptr));
  } else if (d.equal(py::dtype::of<double>())) {
    run(static_cast<const double*>(nullptr));
  } else if (d.kind() == 'f' && d.itemsize() == 2) {
    run(static_cast<const Half*>(nullptr));
  } else if (d.kind() == 'V' && d.itemsize() == 2 && py::str(d.attr("name")).cast<std::string>() == "bfloat16") {
    run(static_cast<const BFloat16*>(nullptr));
  } else {
    throw py::type_error("sample_rows: x must be float32, float64, float16 or bfloat16");
  }
  return py::make_tuple(tokens, lp, bad, error);
}

std::size_t check_rows(const py::array& x, const char* what) {
  if (x.ndim() != 2 || !(x.flags() & py::array::c_style))
    throw py::value_error(std::string(what) + ": x must be a C-contiguous 2-d array");
  if (x.shape(1) == 0) throw py::value_error(std::string(what) + ": rows must not be empty");
  return std::size_t(x.shape(0));
}

py::tuple sample_rows_py(const py::array& x, const py::array_t<double>& temperature,
                         const py::array_t<std::int64_t>& top_k, const py::array_t<double>& top_p,
                         const py::array_t<double>& min_p, const py::array_t<std::uint64_t>& seed,
                         std::uint64_t row_offset, bool want_logprobs, int threads) {
  const std::size_t rows = check_rows(x, "sample_rows");
  SampleParams p;
  p.temperature = row_values(temperature, rows, "temperature");
  p.top_k = row_values(top_k, rows, "top_k");
  p.top_p = row_values(top_p, rows, "top_p");
  p.min_p = row_values(min_p, rows, "min_p");
  p.seed = row_values(seed, rows, "seed");
  p.row_offset = row_offset;
  return run_sample_rows(x, p, want_logprobs, threads);
}

// The same with one value of each parameter for every row (checked by the Python wrapper):
// the rows get the very values sample_rows would be given as arrays, so the same results,
// without building five NumPy arrays per call.
py::tuple sample_rows_scalar_py(const py::array& x, double temperature, std::int64_t top_k, double top_p,
                                double min_p, std::uint64_t seed, std::uint64_t row_offset, bool want_logprobs,
                                int threads) {
  const std::size_t rows = check_rows(x, "sample_rows_scalar");
  const std::vector<double> t(rows, temperature), pp(rows, top_p), mp(rows, min_p);
  const std::vector<std::int64_t> k(rows, top_k);
  const std::vector<std::uint64_t> s(rows, seed);
  SampleParams p;
  p.temperature = t.data();
  p.top_k = k.data();
  p.top_p = pp.data();
  p.min_p = mp.data();
  p.seed = s.data();
  p.row_offset = row_offset;
  return run_sample_rows(x, p, want_logprobs, threads);
}

template <class Fn> void with_rows_type(const py::array& x, Fn&& fn) {
  const py::dtype d = x.dtype();
  if (d.equal(py::dtype::of<float>())) {
    fn(static_cast<const float*>(nullptr));
  } else if (d.equal(py::dtype::of<double>())) {
    fn(static_cast<const double*>(nullptr));
  } else if (d.kind() == 'f' && d.itemsize() == 2) {
    fn(static_cast<const Half*>(nullptr));
  } else if (d.kind() == 'V' && d.itemsize() == 2 && py::str(d.attr("name")).cast<std::string>() == "bfloat16") {
    fn(static_cast<const BFloat16*>(nullptr));
  } else {
    throw py::type_error("x must be float32, float64, float16 or bfloat16");
  }
}

py::tuple topk_rows_py(const py::array& x, std::int64_t k, int threads) {
  if (x.ndim() != 2 || !(x.flags() & py::array::c_style))
    throw py::value_error("topk_rows: x must be a C-contiguous 2-d array");
  const std::size_t rows = std::size_t(x.shape(0)), n = std::size_t(x.shape(1));
  if (k < 1 || std::size_t(k) > n) throw py::value_error("topk_rows: k must be in [1, n]");
  py::array_t<std::int64_t> idx({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(k)});
  std::int64_t* ip = idx.mutable_data();
  std::int64_t bad = -1;
  int error = 0;
  with_rows_type(x, [&](auto* typed) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(typed)>>;
    const T* xp = static_cast<const T*>(x.data());
    without_gil([&] { bad = topk_rows<T>(xp, rows, n, std::size_t(k), ip, threads, &error); });
  });
  return py::make_tuple(idx, bad, error);
}

}  // namespace

void bind_sampling(py::module_& m) {
  m.def("topk_rows", &topk_rows_py, py::arg("x"), py::arg("k"), py::arg("threads"),
        "Indices (rows, k) of each row's k largest values (value descending, index ascending) of a contiguous "
        "float32/float64/float16/bfloat16 matrix. Returns (indices, lowest bad row or -1, error kind)");
  m.def("sample_rows", &sample_rows_py, py::arg("x"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
        py::arg("min_p"), py::arg("seed"), py::arg("row_offset"), py::arg("want_logprobs"), py::arg("threads"),
        "One token per row of a contiguous float32/float64/float16/bfloat16 matrix; per-row parameter arrays. Returns "
        "(tokens, logprobs or None, lowest bad row or -1, error kind: 1 NaN, 2 all -inf, 3 +inf)");
  m.def("sample_rows_scalar", &sample_rows_scalar_py, py::arg("x"), py::arg("temperature"), py::arg("top_k"),
        py::arg("top_p"), py::arg("min_p"), py::arg("seed"), py::arg("row_offset"), py::arg("want_logprobs"),
        py::arg("threads"),
        "sample_rows with one value of each parameter for every row (already checked). Returns as sample_rows");
  m.def("philox4x32", [](std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, std::uint32_t k0,
                         std::uint32_t k1) {
    const std::uint32_t c[4] = {c0, c1, c2, c3}, k[2] = {k0, k1};
    std::uint32_t o[4];
    philox4x32_10(c, k, o);
    return py::make_tuple(o[0], o[1], o[2], o[3]);
  }, py::arg("c0"), py::arg("c1"), py::arg("c2"), py::arg("c3"), py::arg("k0"), py::arg("k1"),
  "Philox4x32-10 of one counter and key (known-answer tests)");
  m.def("philox_uniform", &philox_uniform, py::arg("seed"), py::arg("counter"),
        "The uniform [0, 1) double that row `counter` of stream `seed` draws");
}

}  // namespace fastsoftmax
