// The tier of a binding's isa= argument, with the errors every binding gives.
#pragma once
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "dispatch/registry.h"

namespace fastsoftmax {

// A caller's string as Python writes it ('avx2', 'a\x00b'): an error message cannot hold a
// NUL (it would end the message there).
inline std::string quoted(const std::string& s) {
  return pybind11::repr(pybind11::str(s)).cast<std::string>();
}

// isa= of a call: nullptr for None (the active tier), else the name in *storage.
inline const std::string* requested_isa(const pybind11::object& isa, std::string* storage) {
  if (isa.is_none()) return nullptr;
  *storage = isa.cast<std::string>();
  return storage;
}

// The ValueError of a tier pick_tier refused.
[[noreturn]] inline void refuse_tier(TierRefusal why, const std::string& name) {
  switch (why) {
    case TierRefusal::unknown: {
      std::string known;
      for (const auto& i : compiled_isas()) known += (known.empty() ? "" : ", ") + i;
      throw pybind11::value_error("unknown isa " + quoted(name) + " (this build has: " + known + ")");
    }
    case TierRefusal::not_runnable:
      throw pybind11::value_error("isa " + quoted(name) + " is compiled in but this CPU (or OS) cannot run it");
    case TierRefusal::above_cap:
      throw pybind11::value_error("isa " + quoted(name) + " is above the cap FASTSOFTMAX_ISA=" + quoted(isa_cap()) +
                                  " set for this process");
    case TierRefusal::none: break;
  }
  throw std::logic_error("refuse_tier: the tier was not refused");
}

// pick_tier for isa= (None: the active tier), refusals as ValueErrors.
inline Tier tier_of(const pybind11::object& isa) {
  std::string name;
  Tier tier;
  const TierRefusal why = pick_tier(requested_isa(isa, &name), &tier);
  if (why != TierRefusal::none) refuse_tier(why, name);
  return tier;
}

}  // namespace fastsoftmax
