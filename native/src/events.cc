// libvirt's event loop, connection-close callbacks and domain lifecycle events.
//
// libvirt delivers events (and runs keepalive) only while someone runs its event loop: the module
// registers the default implementation once per process, before any connection is opened, and a
// dedicated native thread runs virEventRunDefaultImpl() forever. Callbacks fire on that thread and
// reach JS through unref'd Napi::ThreadSafeFunctions (they never keep the process alive).
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "events.h"

namespace vmflow {

// ---- event loop ------------------------------------------------------------------------------

void StartEventLoopOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (virEventRegisterDefaultImpl() < 0) {
      ErrorInfo e = LastError("virEventRegisterDefaultImpl");
      fprintf(stderr, "vmflow libvirt: cannot register the event loop: %s\n", e.message.c_str());
      return;
    }
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) {
          virResetLastError();
          std::this_thread::sleep_for(std::chrono::milliseconds(100));  // never spin on a broken loop
        }
      }
    }).detach();
  });
}

// ---- connection close callback ------------------------------------------------------------------

struct CloseCallbackData {
  Napi::ThreadSafeFunction tsfn;
};

static void OnConnectionClosed(virConnectPtr, int reason, void* opaque) {
  auto* data = static_cast<CloseCallbackData*>(opaque);
  auto* payload = new int(reason);
  napi_status status = data->tsfn.NonBlockingCall(payload, [](Napi::Env env, Napi::Function fn, int* r) {
    std::unique_ptr<int> owned(r);
    if (env == nullptr || fn.IsEmpty()) return;
    try {
      fn.Call({Napi::Number::New(env, *owned)});
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());  // a throwing listener is an uncaught exception
    }
  });
  if (status != napi_ok) delete payload;
}

CloseCallbackData* NewCloseCallback(Napi::Env env, Napi::Function onClose) {
  auto* data = new CloseCallbackData{Napi::ThreadSafeFunction::New(env, onClose, "vmflow.libvirt.close", 0, 1)};
  data->tsfn.Unref(env);
  return data;
}

bool RegisterCloseCallback(virConnectPtr conn, CloseCallbackData* data) {
  // No free callback: we unregister and free it ourselves in Teardown, before the last
  // virConnectClose (the registration holds a reference on the connection).
  if (virConnectRegisterCloseCallback(conn, OnConnectionClosed, data, nullptr) < 0) {
    virResetLastError();
    return false;
  }
  return true;
}

void FreeCloseCallback(CloseCallbackData* data) {
  if (data == nullptr) return;
  data->tsfn.Release();
  delete data;
}

// ---- domain lifecycle events ----------------------------------------------------------------------

namespace {

struct Subscription {
  Napi::ThreadSafeFunction tsfn;
};

struct LifecycleEvent {
  std::string name;
  std::string uuid;
  int event;
  int detail;
};

int OnLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  auto* sub = static_cast<Subscription*>(opaque);
  char uuid[VIR_UUID_STRING_BUFLEN] = {0};
  virDomainGetUUIDString(dom, uuid);
  const char* name = virDomainGetName(dom);
  auto* ev = new LifecycleEvent{name != nullptr ? name : "", uuid, event, detail};
  napi_status status = sub->tsfn.NonBlockingCall(ev, [](Napi::Env env, Napi::Function fn, LifecycleEvent* e) {
    std::unique_ptr<LifecycleEvent> owned(e);
    if (env == nullptr || fn.IsEmpty()) return;
    try {
      fn.Call({Napi::String::New(env, e->name), Napi::String::New(env, e->uuid), Napi::Number::New(env, e->event),
               Napi::Number::New(env, e->detail)});
    } catch (const Napi::Error& err) {
      napi_fatal_exception(env, err.Value());
    }
  });
  if (status != napi_ok) delete ev;
  return 0;
}

// libvirt calls this once the callback can no longer fire (after deregistration, possibly later
// on the event-loop thread if a dispatch was in progress): the only safe place to release.
void FreeSubscription(void* opaque) {
  auto* sub = static_cast<Subscription*>(opaque);
  sub->tsfn.Release();
  delete sub;
}

}  // namespace

Napi::Value SubscribeLifecycle(Napi::Env env, const std::shared_ptr<ConnState>& state, Napi::Function cb) {
  if (state->closed()) return Rejected(env, ClosedError());
  auto* sub = new Subscription{Napi::ThreadSafeFunction::New(env, cb, "vmflow.libvirt.lifecycle", 0, 1)};
  sub->tsfn.Unref(env);
  return RunAsync(env, [ref = Owned<virConnect>::Share(state->conn), st = state, sub]() mutable {
    int id = virConnectDomainEventRegisterAny(ref.get(), nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle), sub, FreeSubscription);
    if (id < 0) {
      ErrorInfo e = LastError("virConnectDomainEventRegisterAny");
      FreeSubscription(sub);  // libvirt does not call the free callback when registration fails
      throw Failure(std::move(e));
    }
    return [id, st = std::move(st)](Napi::Env env) -> Napi::Value {
      st->lifecycleCallbacks.insert(id);
      return Napi::Number::New(env, id);
    };
  });
}

Napi::Value UnsubscribeLifecycle(Napi::Env env, const std::shared_ptr<ConnState>& state, int id) {
  // Unknown ids (already removed, or released by close()) are a no-op: unsubscribe is idempotent.
  if (state->closed() || state->lifecycleCallbacks.erase(id) == 0) return Resolved(env, env.Undefined());
  return RunAsync(env, [ref = Owned<virConnect>::Share(state->conn), id] {
    Check(virConnectDomainEventDeregisterAny(ref.get(), id), "virConnectDomainEventDeregisterAny");
    return ResolveUndefined();
  });
}

// ---- connection teardown --------------------------------------------------------------------------

std::function<void()> ConnState::TakeTeardown() {
  std::vector<std::function<void()>> frees;
  for (Child* child : children) child->Detach(frees);
  children.clear();
  std::vector<int> ids(lifecycleCallbacks.begin(), lifecycleCallbacks.end());
  lifecycleCallbacks.clear();
  virConnectPtr c = std::exchange(conn, nullptr);
  CloseCallbackData* cd = std::exchange(closeData, nullptr);
  return [c, cd, ids = std::move(ids), frees = std::move(frees)] {
    if (c == nullptr) return;
    for (int id : ids) virConnectDomainEventDeregisterAny(c, id);  // best effort: we are closing
    if (cd != nullptr) virConnectUnregisterCloseCallback(c, OnConnectionClosed);
    FreeCloseCallback(cd);
    for (const auto& f : frees) f();
    virConnectClose(c);
    virResetLastError();
  };
}

ConnState::~ConnState() {
  --Counters::connections;
  // Reached when every JS object of a connection that was never close()d has been collected.
  if (conn != nullptr) RunInBackground(TakeTeardown());
}

}  // namespace vmflow
