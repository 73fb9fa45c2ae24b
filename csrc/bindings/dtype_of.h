// The kernel dtype of a NumPy array, for every binding that takes arrays.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "dispatch/registry.h"

namespace fastsoftmax {

// ml_dtypes.bfloat16 (an optional dependency, never imported here): a 2-byte user dtype
// named "bfloat16". Its type number is kept once one has been seen, since the name lookup
// (a Python attribute and a string) costs more than a small call's kernel.
inline bool is_bfloat16(PyObject* descr) {
  namespace py = pybind11;
  static int number = -1;  // guarded by the GIL
  const int num = py::detail::array_descriptor_proxy(descr)->type_num;
  if (num == number) return true;
  const auto d = py::reinterpret_borrow<py::dtype>(descr);
  if (d.kind() != 'V' || d.itemsize() != 2 || py::str(d.attr("name")).cast<std::string>() != "bfloat16") return false;
  if (number < 0) number = num;
  return true;
}

// float32, float64, float16 or ml_dtypes.bfloat16 (an optional dependency, never imported
// here: a 2-byte user dtype named "bfloat16"); anything else is a TypeError naming `what`.
inline DType dtype_of(const pybind11::array& a, const char* what) {
  namespace py = pybind11;
  const py::dtype d = a.dtype();
  if (d.equal(py::dtype::of<float>())) return DType::f32;
  if (d.equal(py::dtype::of<double>())) return DType::f64;
  if (d.kind() == 'f' && d.itemsize() == 2) return DType::f16;
  if (is_bfloat16(d.ptr())) return DType::bf16;
  throw py::type_error(std::string(what) + " must be float32, float64, float16 or bfloat16, got " +
                       std::string(py::str(d)));
}

}  // namespace fastsoftmax
