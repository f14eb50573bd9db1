// Shared building blocks of the vmflow libvirt binding:
//  - ErrorInfo / Failure: a libvirt error copied on the thread that made the failing call;
//  - Owned<T>: RAII ownership of one libvirt object reference (virDomainPtr, ...);
//  - RunAsync: the one generic "run this lambda on the libuv thread pool, settle a Promise" helper;
//  - small argument and resolver helpers used by every wrapper.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <napi.h>

#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace vmflow {

// ---------------------------------------------------------------------------------------------
// Errors

/** A copy of libvirt's thread-local virError (libvirt errors live in thread-local storage). */
struct ErrorInfo {
  int code = VIR_ERR_INTERNAL_ERROR;
  int domain = VIR_FROM_NONE;
  int level = VIR_ERR_ERROR;
  std::string message;
  std::string str1, str2, str3;
  int int1 = 0;
  int int2 = 0;
};

/** Thrown on a worker thread by a failing libvirt call; turned into a JS LibvirtError. */
class Failure : public std::exception {
 public:
  explicit Failure(ErrorInfo info) : info_(std::move(info)) {}
  const ErrorInfo& info() const { return info_; }
  const char* what() const noexcept override { return info_.message.c_str(); }

 private:
  ErrorInfo info_;
};

/** Copies the calling thread's last libvirt error ("<call> failed" if libvirt set none). */
ErrorInfo LastError(const char* call);
/** Throws Failure(LastError(call)). Must run on the thread that made the failing call. */
[[noreturn]] void ThrowLastError(const char* call);
/** The error reported for any call on a connection that close() already closed. */
ErrorInfo ClosedError();
/** Builds the JS error (a LibvirtError when the TS layer registered its class). */
Napi::Value MakeJsError(Napi::Env env, const ErrorInfo& info);

inline int Check(int rc, const char* call) {
  if (rc < 0) ThrowLastError(call);
  return rc;
}

template <typename P>
P* CheckPtr(P* p, const char* call) {
  if (p == nullptr) ThrowLastError(call);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Ownership of libvirt object references

template <typename T>
struct Ops;  // Free/Ref for each libvirt object type, and its slot in AddonData::ctors.

#define VMFLOW_OPS(T, INDEX, FREE, REF)           \
  template <>                                     \
  struct Ops<T> {                                 \
    static constexpr int kIndex = INDEX;          \
    static void Free(T* p) { FREE(p); }           \
    static void Ref(T* p) { REF(p); }             \
  };

VMFLOW_OPS(virConnect, -1, virConnectClose, virConnectRef)
VMFLOW_OPS(virDomain, 0, virDomainFree, virDomainRef)
VMFLOW_OPS(virNetwork, 1, virNetworkFree, virNetworkRef)
VMFLOW_OPS(virNWFilter, 2, virNWFilterFree, virNWFilterRef)
VMFLOW_OPS(virNWFilterBinding, 3, virNWFilterBindingFree, virNWFilterBindingRef)
VMFLOW_OPS(virStoragePool, 4, virStoragePoolFree, virStoragePoolRef)
VMFLOW_OPS(virStorageVol, 5, virStorageVolFree, virStorageVolRef)
#undef VMFLOW_OPS

constexpr int kHandleTypes = 6;

/** Owns exactly one reference to a libvirt object; move-only, frees on destruction. */
template <typename T>
class Owned {
 public:
  Owned() = default;
  explicit Owned(T* p) : p_(p) {}
  /** Takes an extra reference (virXxxRef) to an object owned elsewhere. */
  static Owned Share(T* p) {
    if (p != nullptr) Ops<T>::Ref(p);
    return Owned(p);
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Owned(Owned&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) reset(std::exchange(o.p_, nullptr));
    return *this;
  }
  ~Owned() { reset(); }

  void reset(T* p = nullptr) {
    if (p_ != nullptr) Ops<T>::Free(p_);
    p_ = p;
  }
  T* get() const { return p_; }
  T* release() { return std::exchange(p_, nullptr); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};

/** Takes ownership of the array a virConnectListAllXxx call returned. */
template <typename T>
std::vector<Owned<T>> TakeList(T** items, int count) {
  std::vector<Owned<T>> out;
  out.reserve(count > 0 ? count : 0);
  for (int i = 0; i < count; ++i) out.emplace_back(items[i]);
  free(items);
  return out;
}

/** Copies and frees a malloc'd string returned by libvirt; a NULL return is an error. */
std::string TakeString(char* s, const char* call);

// ---------------------------------------------------------------------------------------------
// The generic async helper

/**
 * Runs `work` on the libuv thread pool and settles a Promise on the JS thread.
 * `work()` performs the blocking libvirt calls and returns a resolver, a callable
 * `Napi::Value(Napi::Env)` that converts the result on the JS thread. Throwing Failure rejects
 * with a LibvirtError. The work object (and any libvirt reference it captured) is destroyed on the
 * worker thread, so releasing it never blocks JS.
 */
template <typename Work>
class Task final : public Napi::AsyncWorker {
  using Resolver = std::invoke_result_t<Work&>;

 public:
  Task(Napi::Env env, Work&& work)
      : Napi::AsyncWorker(env, "vmflow.libvirt"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    virResetLastError();
    try {
      resolver_.emplace((*work_)());
    } catch (const Failure& f) {
      error_ = f.info();
    } catch (const std::exception& e) {
      ErrorInfo info;
      info.message = e.what();
      error_ = std::move(info);
    }
    work_.reset();  // drop captured libvirt references here, off the JS thread
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_) {
      deferred_.Reject(MakeJsError(env, *error_));
      return;
    }
    try {
      deferred_.Resolve((*resolver_)(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::optional<Work> work_;
  std::optional<Resolver> resolver_;
  std::optional<ErrorInfo> error_;
};

template <typename Work>
Napi::Promise RunAsync(Napi::Env env, Work&& work) {
  auto* task = new Task<std::decay_t<Work>>(env, std::forward<Work>(work));
  Napi::Promise promise = task->Promise();
  task->Queue();  // the AsyncWorker deletes itself after OnOK
  return promise;
}

Napi::Promise Rejected(Napi::Env env, const ErrorInfo& info);
Napi::Promise Resolved(Napi::Env env, Napi::Value value);

/** Runs `f` (argument parsing + RunAsync); a JS exception thrown while parsing becomes a rejection. */
template <typename F>
Napi::Value Guard(Napi::Env env, F&& f) {
  try {
    return f();
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
}

// ---------------------------------------------------------------------------------------------
// Resolvers (run on the JS thread) and argument readers

inline auto ResolveUndefined() {
  return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
}
inline auto ResolveString(std::string s) {
  return [s = std::move(s)](Napi::Env env) -> Napi::Value { return Napi::String::New(env, s); };
}
inline auto ResolveNumber(double v) {
  return [v](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, v); };
}
inline auto ResolveBool(bool v) {
  return [v](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, v); };
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
std::optional<std::string> ArgOptString(const Napi::CallbackInfo& info, size_t i, const char* name);
double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name);
/** A size (bytes or KiB): a non-negative integer a JS number holds exactly. */
uint64_t ArgSize(const Napi::CallbackInfo& info, size_t i, const char* name);
/** Optional flags argument (undefined → 0). */
uint32_t ArgFlags(const Napi::CallbackInfo& info, size_t i);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* name);

// ---------------------------------------------------------------------------------------------
// Typed parameters (domain stats) flattened to JS values

struct TypedValue {
  enum Kind { kNumber, kString, kBool } kind = kNumber;
  double number = 0;
  std::string string;
  bool boolean = false;
};
using TypedParams = std::vector<std::pair<std::string, TypedValue>>;

TypedParams CopyTypedParams(const virTypedParameter* params, int count);
Napi::Object TypedParamsToObject(Napi::Env env, const TypedParams& params);

// ---------------------------------------------------------------------------------------------
// Background work that must not block the JS thread and has no Promise to settle
// (closing a connection whose JS object was garbage-collected).

void RunInBackground(std::function<void()> fn);

}  // namespace vmflow
