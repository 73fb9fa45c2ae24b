// The storage type of each dtype, for code written once over it.
#pragma once
#include "dispatch/registry.h"
#include "kernels/half.h"

namespace fastsoftmax {

// Calls f(S{}) with the storage type of dtype d.
template <class F>
void with_storage(DType d, F&& f) {
  switch (d) {
#define FSM_STORAGE_CASE(dt, stype) \
  case DType::dt: return f(stype{});
    FASTSOFTMAX_FOR_EACH_DTYPE(FSM_STORAGE_CASE)
#undef FSM_STORAGE_CASE
  }
}

}  // namespace fastsoftmax
