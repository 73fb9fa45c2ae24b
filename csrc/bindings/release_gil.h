// Running native work with the GIL released, safely at interpreter exit.
//
// A daemon thread may be inside a kernel when the main thread finalizes the interpreter.
// On CPython 3.9-3.13, re-taking the GIL then ends the thread with PyThread_exit_thread:
// on glibc a pthread_exit, whose forced unwind (abi::__forced_unwind) calls std::terminate
// when it meets a noexcept frame -- pybind11's ~gil_scoped_release is one (pybind11 issue
// 2215; the same abort as pytorch issue 38228: "terminate called without an active
// exception"). Unwinding would also run destructors that release Python references while
// another thread finalizes the interpreter. So without_gil:
//  - takes the GIL back from a plain function, never from a destructor;
//  - does not try when the interpreter began finalizing while the work ran (it was not
//    finalizing when the GIL was released, so this thread is not the finalizing one, whose
//    own calls -- say, from a __del__ during finalization -- must go on): the thread
//    hangs for good instead, without the GIL, as CPython 3.14 does for such threads
//    (PyThread_hang_thread). The process exits around it;
//  - when finalization begins between that check and the re-acquire, catches the forced
//    unwind of PyThread_exit_thread and hangs there, never leaving the handler (leaving
//    it without rethrowing would abort; rethrowing would unwind through frames that hold
//    Python references, without the GIL).
// Exceptions of the work itself are rethrown once the GIL is held again.
#pragma once
#include <Python.h>

#include <chrono>
#include <exception>
#include <thread>
#include <type_traits>
#include <utility>

#if defined(__GLIBCXX__)
#include <cxxabi.h>  // abi::__forced_unwind
#define FASTSOFTMAX_FORCED_UNWIND 1
#endif

namespace fastsoftmax {

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

[[noreturn]] inline void hang_thread() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
}

// Takes the GIL back after PyEval_SaveThread (see above); `finalizing_before`: whether the
// interpreter was finalizing when the GIL was released.
inline void take_gil_back(PyThreadState* state, bool finalizing_before) {
  if (!finalizing_before && interpreter_finalizing()) hang_thread();
#if defined(FASTSOFTMAX_FORCED_UNWIND)
  try {
    PyEval_RestoreThread(state);
  } catch (abi::__forced_unwind&) {
    hang_thread();
  }
#else
  PyEval_RestoreThread(state);
#endif
}

#if defined(FASTSOFTMAX_FORCED_UNWIND)
#define FASTSOFTMAX_RETHROW_FORCED_UNWIND \
  catch (abi::__forced_unwind&) {        \
    throw;                               \
  }
#else
#define FASTSOFTMAX_RETHROW_FORCED_UNWIND
#endif

// Runs fn() with the GIL released and returns its result; the caller must hold the GIL.
// A thread cancelled inside fn (pthread_cancel: a forced unwind) leaves without the GIL.
template <class Fn>
auto without_gil(Fn&& fn) -> decltype(fn()) {
  const bool finalizing = interpreter_finalizing();
  PyThreadState* state = PyEval_SaveThread();
  std::exception_ptr error;
  if constexpr (std::is_void<decltype(fn())>::value) {
    try {
      std::forward<Fn>(fn)();
    } FASTSOFTMAX_RETHROW_FORCED_UNWIND catch (...) {
      error = std::current_exception();
    }
    take_gil_back(state, finalizing);
    if (error) std::rethrow_exception(error);
  } else {
    decltype(fn()) result{};
    try {
      result = std::forward<Fn>(fn)();
    } FASTSOFTMAX_RETHROW_FORCED_UNWIND catch (...) {
      error = std::current_exception();
    }
    take_gil_back(state, finalizing);
    if (error) std::rethrow_exception(error);
    return result;
  }
}

}  // namespace fastsoftmax
