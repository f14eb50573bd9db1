// JS-visible wrappers of libvirt objects.
//
// Lifetime rules (the whole point of this file):
//  - A Connection and each of its children share one ConnState (std::shared_ptr). The libvirt
//    connection is closed when close() is called or, failing that, when the last JS object that
//    refers to it (the Connection or any child) has been garbage-collected.
//  - Each child owns one reference to its libvirt object (freed by its finalizer). Each libvirt
//    object holds a reference on its virConnect, so a child keeps its connection alive.
//  - close() detaches every live child (their references are released on the worker thread,
//    before virConnectClose); later calls on them reject with a LibvirtError (INVALID_CONN).
//  - Every asynchronous call takes a reference of its own (virXxxRef) for the duration of the
//    call and drops it on the worker thread, so garbage collection or close() during a call is
//    safe and nothing is freed twice.
#pragma once

#include <atomic>
#include <memory>
#include <set>
#include <unordered_set>

#include "common.h"

namespace vmflow {

/** Live wrapper objects (for leak tests): handles of libvirt objects and connection states. */
struct Counters {
  static std::atomic<int64_t> handles;
  static std::atomic<int64_t> connections;
};

class Child {
 public:
  Child() { ++Counters::handles; }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  virtual ~Child() { --Counters::handles; }
  /** Gives up this child's libvirt reference: appends its release to `frees`. */
  virtual void Detach(std::vector<std::function<void()>>& frees) = 0;
};

struct CloseCallbackData;  // events.cc

/** Shared by a Connection and all its children. Used on the JS thread (only its destructor may run
 * on a worker, when a finished call held the last reference; it then just posts the teardown). */
struct ConnState {
  explicit ConnState(virConnectPtr c, CloseCallbackData* closeData) : conn(c), closeData(closeData) {
    ++Counters::connections;
  }
  ConnState(const ConnState&) = delete;
  ConnState& operator=(const ConnState&) = delete;
  ~ConnState();

  bool closed() const { return conn == nullptr; }
  /** Moves everything that must be released out of this state; the connection counts as closed. */
  std::function<void()> TakeTeardown();

  virConnectPtr conn;  // our reference; nullptr once closed
  CloseCallbackData* closeData;
  std::unordered_set<Child*> children;
  std::set<int> lifecycleCallbacks;
};

/** Per-environment data: constructors of the wrapper classes and the JS LibvirtError class. */
struct AddonData {
  Napi::FunctionReference errorClass;
  Napi::FunctionReference ctors[kHandleTypes];
  Napi::FunctionReference connectionCtor;
};

AddonData& Data(Napi::Env env);

/** Releases a libvirt reference without blocking the JS thread if it might be the last one. */
template <typename T>
void ReleaseInBackground(Owned<T> ref) {
  T* p = ref.release();
  if (p != nullptr) RunInBackground([p] { Ops<T>::Free(p); });
}

/**
 * The JS wrapper of one libvirt object of type T (virDomain, virNetwork, ...). Instances are only
 * made by New() (from a resolver, on the JS thread). The methods each type exposes are listed in
 * Handle<T>::Methods(), specialised in the file of that type; the generic method shapes below
 * cover the repetitive ones (void call, call with flags, boolean query, XML getter, ...).
 */
template <typename T>
class Handle : public Napi::ObjectWrap<Handle<T>>, public Child {
 public:
  using Self = Handle<T>;
  using Descriptor = typename Napi::ObjectWrap<Self>::PropertyDescriptor;
  using Custom = Napi::Value (*)(Self&, const Napi::CallbackInfo&);

  static std::vector<Descriptor> Methods();

  static void Register(Napi::Env env, const char* className) {
    Data(env).ctors[Ops<T>::kIndex] = Napi::Persistent(Self::DefineClass(env, className, Methods()));
  }

  /** Wraps `ptr` (ownership taken) as a JS object belonging to `conn`. */
  static Napi::Value New(Napi::Env env, const std::shared_ptr<ConnState>& conn, Owned<T> ptr) {
    Seed seed{conn, std::move(ptr)};
    return Data(env).ctors[Ops<T>::kIndex].New({Napi::External<Seed>::New(env, &seed)});
  }

  explicit Handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Self>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "libvirt objects are obtained from a Connection");
    }
    Seed* seed = info[0].As<Napi::External<Seed>>().Data();
    conn_ = seed->conn;
    if (conn_->closed()) {
      ReleaseInBackground(std::move(seed->ptr));  // the connection was closed while we were busy
    } else {
      ptr_ = std::move(seed->ptr);
      conn_->children.insert(this);
    }
  }

  ~Handle() override {
    // Not the last reference to anything blocking: the connection (or close()) holds its own.
    if (ptr_) conn_->children.erase(this);
  }

  void Detach(std::vector<std::function<void()>>& frees) override {
    T* p = ptr_.release();
    if (p != nullptr) frees.push_back([p] { Ops<T>::Free(p); });
  }

  const std::shared_ptr<ConnState>& conn() const { return conn_; }
  /** The wrapped object, or nullptr once the connection was closed. */
  T* get() const { return ptr_.get(); }

  /** The Handle<T> behind a JS value, or a TypeError if it is not one. */
  static Self& From(Napi::Env env, Napi::Value v, const char* name) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Data(env).ctors[Ops<T>::kIndex].Value())) {
      throw Napi::TypeError::New(env, std::string("argument '") + name + "' has the wrong type");
    }
    return *Self::Unwrap(v.As<Napi::Object>());
  }

  /** Queues `work(T*)` with a reference of its own; rejects if the connection was closed. */
  template <typename Work>
  Napi::Value Run(Napi::Env env, Work work) {
    if (!ptr_) return Rejected(env, ClosedError());
    return RunAsync(env, [ref = Owned<T>::Share(ptr_.get()), work = std::move(work)]() mutable {
      return work(ref.get());
    });
  }

  // ---- generic method shapes ------------------------------------------------------------

  template <int (*Fn)(T*)>
  Napi::Value Void(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [](T* p) {
      Check(Fn(p), "libvirt call");
      return ResolveUndefined();
    });
  }

  template <int (*Fn)(T*, unsigned int)>
  Napi::Value VoidFlags(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      uint32_t flags = ArgFlags(info, 0);
      return Run(info.Env(), [flags](T* p) {
        Check(Fn(p, flags), "libvirt call");
        return ResolveUndefined();
      });
    });
  }

  /** `(xml, flags)` calls such as virDomainAttachDeviceFlags. */
  template <int (*Fn)(T*, const char*, unsigned int)>
  Napi::Value XmlArgFlags(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      std::string xml = ArgString(info, 0, "xml");
      uint32_t flags = ArgFlags(info, 1);
      return Run(info.Env(), [xml = std::move(xml), flags](T* p) {
        Check(Fn(p, xml.c_str(), flags), "libvirt call");
        return ResolveUndefined();
      });
    });
  }

  /** Boolean queries returning 1/0/-1 (virDomainIsActive, ...). */
  template <int (*Fn)(T*)>
  Napi::Value Bool(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [](T* p) { return ResolveBool(Check(Fn(p), "libvirt query") == 1); });
  }

  template <int (*Fn)(T*, unsigned int)>
  Napi::Value BoolFlags(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      uint32_t flags = ArgFlags(info, 0);
      return Run(info.Env(), [flags](T* p) { return ResolveBool(Check(Fn(p, flags), "libvirt query") == 1); });
    });
  }

  /** Integer queries with flags (virDomainGetVcpusFlags). */
  template <int (*Fn)(T*, unsigned int)>
  Napi::Value IntFlags(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      uint32_t flags = ArgFlags(info, 0);
      return Run(info.Env(), [flags](T* p) { return ResolveNumber(Check(Fn(p, flags), "libvirt query")); });
    });
  }

  /** getXML-style getters: a malloc'd string, with flags. */
  template <char* (*Fn)(T*, unsigned int)>
  Napi::Value StringFlags(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      uint32_t flags = ArgFlags(info, 0);
      return Run(info.Env(), [flags](T* p) { return ResolveString(TakeString(Fn(p, flags), "libvirt getter")); });
    });
  }

  /** Malloc'd string getters without flags (virNetworkGetBridgeName, virStorageVolGetPath). */
  template <char* (*Fn)(T*)>
  Napi::Value OwnedString(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [](T* p) { return ResolveString(TakeString(Fn(p), "libvirt getter")); });
  }

  /** Getters of strings the object owns (names, keys). Local, but kept async for uniformity. */
  template <const char* (*Fn)(T*)>
  Napi::Value BorrowedString(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [](T* p) {
      const char* s = Fn(p);
      if (s == nullptr) ThrowLastError("libvirt getter");
      return ResolveString(s);
    });
  }

  template <int (*Fn)(T*, char*)>
  Napi::Value UUID(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [](T* p) {
      char buf[VIR_UUID_STRING_BUFLEN] = {0};
      Check(Fn(p, buf), "virXxxGetUUIDString");
      return ResolveString(buf);
    });
  }

  template <int (*Fn)(T*, int*)>
  Napi::Value GetFlag(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [](T* p) {
      int on = 0;
      Check(Fn(p, &on), "libvirt getter");
      return ResolveBool(on != 0);
    });
  }

  template <int (*Fn)(T*, int)>
  Napi::Value SetFlag(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), "expected a boolean");
      int on = info[0].As<Napi::Boolean>().Value() ? 1 : 0;
      return Run(info.Env(), [on](T* p) {
        Check(Fn(p, on), "libvirt setter");
        return ResolveUndefined();
      });
    });
  }

  /** Adapter for the hand-written methods: `Napi::Value fn(Handle<T>&, const CallbackInfo&)`. */
  template <Custom Fn>
  Napi::Value Call(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] { return Fn(*this, info); });
  }

 private:
  struct Seed {
    std::shared_ptr<ConnState> conn;
    Owned<T> ptr;
  };

  std::shared_ptr<ConnState> conn_;
  Owned<T> ptr_;
};

/** Resolver that wraps one new libvirt object as a JS handle of `conn`. */
template <typename T>
auto ResolveHandle(std::shared_ptr<ConnState> conn, Owned<T> ptr) {
  return [conn = std::move(conn), ptr = std::move(ptr)](Napi::Env env) mutable -> Napi::Value {
    return Handle<T>::New(env, conn, std::move(ptr));
  };
}

/** Resolver that wraps a list of new libvirt objects as a JS array of handles. */
template <typename T>
auto ResolveHandles(std::shared_ptr<ConnState> conn, std::vector<Owned<T>> items) {
  return [conn = std::move(conn), items = std::move(items)](Napi::Env env) mutable -> Napi::Value {
    Napi::Array out = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); ++i) out.Set(static_cast<uint32_t>(i), Handle<T>::New(env, conn, std::move(items[i])));
    return out;
  };
}

// Method-table shorthands used by the per-type files.
#define VMFLOW_M(NAME, SHAPE, FN) H::InstanceMethod(NAME, &H::template SHAPE<FN>)
#define VMFLOW_CUSTOM(NAME, FN) H::InstanceMethod(NAME, &H::template Call<FN>)

void RegisterDomain(Napi::Env env);
void RegisterNetwork(Napi::Env env);
void RegisterNWFilter(Napi::Env env);
void RegisterStorage(Napi::Env env);
void RegisterConnection(Napi::Env env, Napi::Object exports);

}  // namespace vmflow
