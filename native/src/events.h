// Event loop, close callbacks and lifecycle subscriptions (see events.cc).
#pragma once

#include "handles.h"

namespace vmflow {

/** Registers libvirt's default event loop and starts the thread that runs it (once per process). */
void StartEventLoopOnce();

/** Wraps the JS close listener in an unref'd thread-safe function (JS thread). */
CloseCallbackData* NewCloseCallback(Napi::Env env, Napi::Function onClose);
/** virConnectRegisterCloseCallback (worker thread); false if the driver refused. */
bool RegisterCloseCallback(virConnectPtr conn, CloseCallbackData* data);
/** Releases the thread-safe function and frees the data (any thread). */
void FreeCloseCallback(CloseCallbackData* data);

/** virConnectDomainEventRegisterAny(LIFECYCLE) on a worker; resolves with the callback id. */
Napi::Value SubscribeLifecycle(Napi::Env env, const std::shared_ptr<ConnState>& state, Napi::Function cb);
/** virConnectDomainEventDeregisterAny on a worker; a no-op for unknown ids. */
Napi::Value UnsubscribeLifecycle(Napi::Env env, const std::shared_ptr<ConnState>& state, int id);

}  // namespace vmflow
