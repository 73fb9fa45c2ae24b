// The storage type of each dtype, for code written once over it.
#pragma once
#include "dispatch/registry.h"
#include "kernels/half.h"

namespace fastsoftmax {

// Calls f(S{}) with the storage type of dtype d.
template <class F>
void with_storage(DType d, F&& f) {
  switch (d) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::f16: return f(Half{});
    case DType::bf16: return f(BFloat16{});
  }
}

}  // namespace fastsoftmax
