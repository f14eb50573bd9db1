// Error capture, argument readers, typed-parameter conversion and the background releaser.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "handles.h"

namespace vmflow {

ErrorInfo LastError(const char* call) {
  ErrorInfo info;
  virErrorPtr err = virGetLastError();  // thread-local: valid only on the thread of the failed call
  if (err == nullptr || err->code == VIR_ERR_OK) {
    info.message = std::string(call) + " failed (libvirt reported no error)";
    return info;
  }
  info.code = err->code;
  info.domain = err->domain;
  info.level = err->level;
  info.message = err->message != nullptr ? err->message : std::string(call) + " failed";
  if (err->str1 != nullptr) info.str1 = err->str1;
  if (err->str2 != nullptr) info.str2 = err->str2;
  if (err->str3 != nullptr) info.str3 = err->str3;
  info.int1 = err->int1;
  info.int2 = err->int2;
  virResetLastError();
  return info;
}

void ThrowLastError(const char* call) { throw Failure(LastError(call)); }

ErrorInfo ClosedError() {
  ErrorInfo info;
  info.code = VIR_ERR_INVALID_CONN;
  info.domain = VIR_FROM_NONE;
  info.message = "the libvirt connection is closed";
  return info;
}

Napi::Value MakeJsError(Napi::Env env, const ErrorInfo& info) {
  Napi::Object details = Napi::Object::New(env);
  details.Set("code", info.code);
  details.Set("domain", info.domain);
  details.Set("level", info.level);
  if (!info.str1.empty()) details.Set("str1", info.str1);
  if (!info.str2.empty()) details.Set("str2", info.str2);
  if (!info.str3.empty()) details.Set("str3", info.str3);
  details.Set("int1", info.int1);
  details.Set("int2", info.int2);

  AddonData& data = Data(env);
  if (!data.errorClass.IsEmpty()) {
    return data.errorClass.New({Napi::String::New(env, info.message), details});
  }
  Napi::Error error = Napi::Error::New(env, info.message);
  error.Set("libvirt", details);
  return error.Value();
}

std::string TakeString(char* s, const char* call) {
  if (s == nullptr) ThrowLastError(call);
  std::string out(s);
  free(s);
  return out;
}

Napi::Promise Rejected(Napi::Env env, const ErrorInfo& info) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(MakeJsError(env, info));
  return d.Promise();
}

Napi::Promise Resolved(Napi::Env env, Napi::Value value) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Resolve(value);
  return d.Promise();
}

// ---- arguments --------------------------------------------------------------------------------

static Napi::TypeError ArgError(const Napi::CallbackInfo& info, const char* name, const char* type) {
  return Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be " + type);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) throw ArgError(info, name, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::optional<std::string> ArgOptString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return std::nullopt;
  return ArgString(info, i, name);
}

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw ArgError(info, name, "a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = ArgNumber(info, i, name);
  if (v != static_cast<double>(static_cast<int32_t>(v))) throw ArgError(info, name, "a 32-bit integer");
  return static_cast<int32_t>(v);
}

uint32_t ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = ArgNumber(info, i, name);
  if (v < 0 || v > 4294967295.0 || v != static_cast<double>(static_cast<uint32_t>(v))) {
    throw ArgError(info, name, "an unsigned 32-bit integer");
  }
  return static_cast<uint32_t>(v);
}

uint64_t ArgSize(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = ArgNumber(info, i, name);
  if (!(v >= 0 && v <= 9007199254740991.0) || v != static_cast<double>(static_cast<uint64_t>(v))) {
    throw ArgError(info, name, "a non-negative integer");
  }
  return static_cast<uint64_t>(v);
}

uint32_t ArgFlags(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return 0;
  return ArgUint(info, i, "flags");
}

Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsFunction()) throw ArgError(info, name, "a function");
  return info[i].As<Napi::Function>();
}

// ---- typed parameters -------------------------------------------------------------------------

TypedParams CopyTypedParams(const virTypedParameter* params, int count) {
  TypedParams out;
  out.reserve(count > 0 ? count : 0);
  for (int i = 0; i < count; ++i) {
    const virTypedParameter& p = params[i];
    TypedValue v;
    switch (p.type) {
      case VIR_TYPED_PARAM_INT: v.number = p.value.i; break;
      case VIR_TYPED_PARAM_UINT: v.number = p.value.ui; break;
      case VIR_TYPED_PARAM_LLONG: v.number = static_cast<double>(p.value.l); break;
      case VIR_TYPED_PARAM_ULLONG: v.number = static_cast<double>(p.value.ul); break;
      case VIR_TYPED_PARAM_DOUBLE: v.number = p.value.d; break;
      case VIR_TYPED_PARAM_BOOLEAN:
        v.kind = TypedValue::kBool;
        v.boolean = p.value.b != 0;
        break;
      case VIR_TYPED_PARAM_STRING:
        v.kind = TypedValue::kString;
        v.string = p.value.s != nullptr ? p.value.s : "";
        break;
      default: continue;
    }
    out.emplace_back(p.field, std::move(v));
  }
  return out;
}

Napi::Object TypedParamsToObject(Napi::Env env, const TypedParams& params) {
  Napi::Object obj = Napi::Object::New(env);
  for (const auto& [key, v] : params) {
    switch (v.kind) {
      case TypedValue::kNumber: obj.Set(key, Napi::Number::New(env, v.number)); break;
      case TypedValue::kString: obj.Set(key, Napi::String::New(env, v.string)); break;
      case TypedValue::kBool: obj.Set(key, Napi::Boolean::New(env, v.boolean)); break;
    }
  }
  return obj;
}

// ---- background releaser ---------------------------------------------------------------------

namespace {

/** One lazily started thread that runs releases which may block (a last virConnectClose). */
class Background {
 public:
  static Background& Get() {
    static Background* instance = new Background();  // never destroyed: the thread outlives exit
    return *instance;
  }

  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
      if (!started_) {
        started_ = true;
        std::thread([this] { Loop(); }).detach();
      }
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
      virResetLastError();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool started_ = false;
};

}  // namespace

void RunInBackground(std::function<void()> fn) { Background::Get().Post(std::move(fn)); }

}  // namespace vmflow
