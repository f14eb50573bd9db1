// The Connection wrapper: open/close, host queries, lookups, listings and event subscriptions.
#include <cstring>

#include "events.h"

namespace vmflow {
namespace {

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  using Custom = Napi::Value (*)(Connection&, const Napi::CallbackInfo&);

  static Napi::Function Define(Napi::Env env);
  static Napi::Value New(Napi::Env env, Owned<virConnect> conn, CloseCallbackData* closeData);

  explicit Connection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connection>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "use open() to create a libvirt connection");
    }
    state_ = *info[0].As<Napi::External<std::shared_ptr<ConnState>>>().Data();
  }

  const std::shared_ptr<ConnState>& state() const { return state_; }

  /** Queues `work(virConnectPtr)` with a connection reference of its own. */
  template <typename Work>
  Napi::Value Run(Napi::Env env, Work work) {
    if (state_->closed()) return Rejected(env, ClosedError());
    return RunAsync(env, [ref = Owned<virConnect>::Share(state_->conn), work = std::move(work)]() mutable {
      return work(ref.get());
    });
  }

  // ---- generic shapes --------------------------------------------------------------------

  /** `T* fn(conn, string)`: lookups by name/UUID/path, defineXML without flags. */
  template <typename T, T* (*Fn)(virConnectPtr, const char*)>
  Napi::Value ByString(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      std::string arg = ArgString(info, 0, "name");
      return Run(info.Env(), [arg = std::move(arg), st = state_](virConnectPtr c) mutable {
        Owned<T> obj(CheckPtr(Fn(c, arg.c_str()), "libvirt lookup"));
        return ResolveHandle(std::move(st), std::move(obj));
      });
    });
  }

  /** `T* fn(conn, xml, flags)`: defineXML / createXML with flags. */
  template <typename T, T* (*Fn)(virConnectPtr, const char*, unsigned int)>
  Napi::Value ByStringFlags(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      std::string arg = ArgString(info, 0, "xml");
      uint32_t flags = ArgFlags(info, 1);
      return Run(info.Env(), [arg = std::move(arg), flags, st = state_](virConnectPtr c) mutable {
        Owned<T> obj(CheckPtr(Fn(c, arg.c_str(), flags), "libvirt define"));
        return ResolveHandle(std::move(st), std::move(obj));
      });
    });
  }

  /** `int fn(conn, T***, flags)`: virConnectListAllXxx. */
  template <typename T, int (*Fn)(virConnectPtr, T***, unsigned int)>
  Napi::Value ListAll(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] {
      uint32_t flags = ArgFlags(info, 0);
      return Run(info.Env(), [flags, st = state_](virConnectPtr c) mutable {
        T** items = nullptr;
        int n = Check(Fn(c, &items, flags), "virConnectListAll");
        return ResolveHandles(std::move(st), TakeList(items, n));
      });
    });
  }

  /** `char* fn(conn)`: hostname, URI, capabilities. */
  template <char* (*Fn)(virConnectPtr)>
  Napi::Value OwnedString(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [](virConnectPtr c) { return ResolveString(TakeString(Fn(c), "libvirt getter")); });
  }

  template <Custom Fn>
  Napi::Value Call(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&] { return Fn(*this, info); });
  }

 private:
  std::shared_ptr<ConnState> state_;
};

// ---- hand-written methods ---------------------------------------------------------------------

Napi::Value Close(Connection& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (self.state()->closed()) return Resolved(env, env.Undefined());  // idempotent
  return RunAsync(env, [teardown = self.state()->TakeTeardown()] {
    teardown();
    return ResolveUndefined();
  });
}

Napi::Value IsAlive(Connection& self, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (self.state()->closed()) return Resolved(env, Napi::Boolean::New(env, false));
  return self.Run(env, [](virConnectPtr c) { return ResolveBool(Check(virConnectIsAlive(c), "virConnectIsAlive") == 1); });
}

std::string VersionString(unsigned long v) {
  return std::to_string(v / 1000000) + "." + std::to_string((v / 1000) % 1000) + "." + std::to_string(v % 1000);
}

Napi::Value GetLibVersion(Connection& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virConnectPtr c) {
    unsigned long v = 0;
    Check(virConnectGetLibVersion(c, &v), "virConnectGetLibVersion");
    return ResolveString(VersionString(v));
  });
}

Napi::Value GetVersion(Connection& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virConnectPtr c) {
    unsigned long v = 0;
    Check(virConnectGetVersion(c, &v), "virConnectGetVersion");
    return ResolveString(VersionString(v));
  });
}

Napi::Value GetNodeInfo(Connection& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virConnectPtr c) {
    virNodeInfo ni{};
    Check(virNodeGetInfo(c, &ni), "virNodeGetInfo");
    return [ni](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("model", std::string(ni.model, strnlen(ni.model, sizeof(ni.model))));
      o.Set("memoryKiB", static_cast<double>(ni.memory));
      o.Set("cpus", ni.cpus);
      o.Set("mhz", ni.mhz);
      o.Set("nodes", ni.nodes);
      o.Set("sockets", ni.sockets);
      o.Set("cores", ni.cores);
      o.Set("threads", ni.threads);
      return o;
    };
  });
}

// getDomainCapabilities(virttype): what a domain of that type (kvm, qemu) may use on this host: the CPU
// models QEMU can run under it, among other things. Emulator, arch and machine: libvirt's defaults.
Napi::Value GetDomainCapabilities(Connection& self, const Napi::CallbackInfo& info) {
  std::string virttype = ArgString(info, 0, "virttype");
  return self.Run(info.Env(), [virttype = std::move(virttype)](virConnectPtr c) {
    return ResolveString(TakeString(
        virConnectGetDomainCapabilities(c, nullptr, "x86_64", nullptr, virttype.c_str(), 0),
        "virConnectGetDomainCapabilities"));
  });
}

Napi::Value GetFreeMemory(Connection& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virConnectPtr c) {
    unsigned long long bytes = virNodeGetFreeMemory(c);
    if (bytes == 0 && virGetLastError() != nullptr) ThrowLastError("virNodeGetFreeMemory");  // 0 means error
    return ResolveNumber(static_cast<double>(bytes));
  });
}

Napi::Value SetKeepAlive(Connection& self, const Napi::CallbackInfo& info) {
  int interval = ArgInt(info, 0, "intervalSec");
  uint32_t count = ArgUint(info, 1, "count");
  return self.Run(info.Env(), [interval, count](virConnectPtr c) {
    // Returns 1 when the remote side does not support keepalive: not an error.
    Check(virConnectSetKeepAlive(c, interval, count), "virConnectSetKeepAlive");
    return ResolveUndefined();
  });
}

Napi::Value LookupDomainByID(Connection& self, const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0, "id");
  return self.Run(info.Env(), [id, st = self.state()](virConnectPtr c) mutable {
    Owned<virDomain> d(CheckPtr(virDomainLookupByID(c, id), "virDomainLookupByID"));
    return ResolveHandle(std::move(st), std::move(d));
  });
}

struct DomainStats {
  std::string name;
  std::string uuid;
  TypedParams stats;
};

std::vector<DomainStats> CopyStats(virDomainStatsRecordPtr* records, int n) {
  std::vector<DomainStats> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    DomainStats s;
    const char* name = virDomainGetName(records[i]->dom);
    s.name = name != nullptr ? name : "";
    char uuid[VIR_UUID_STRING_BUFLEN] = {0};
    virDomainGetUUIDString(records[i]->dom, uuid);
    s.uuid = uuid;
    s.stats = CopyTypedParams(records[i]->params, records[i]->nparams);
    out.push_back(std::move(s));
  }
  virDomainStatsRecordListFree(records);
  return out;
}

auto ResolveStats(std::vector<DomainStats> all) {
  return [all = std::move(all)](Napi::Env env) -> Napi::Value {
    Napi::Array arr = Napi::Array::New(env, all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", all[i].name);
      o.Set("uuid", all[i].uuid);
      o.Set("stats", TypedParamsToObject(env, all[i].stats));
      arr.Set(static_cast<uint32_t>(i), o);
    }
    return arr;
  };
}

Napi::Value GetAllDomainStats(Connection& self, const Napi::CallbackInfo& info) {
  uint32_t stats = ArgFlags(info, 0);  // 0: every group the driver supports
  uint32_t flags = ArgFlags(info, 1);
  return self.Run(info.Env(), [stats, flags](virConnectPtr c) {
    virDomainStatsRecordPtr* records = nullptr;
    int n = Check(virConnectGetAllDomainStats(c, stats, &records, flags), "virConnectGetAllDomainStats");
    return ResolveStats(CopyStats(records, n));
  });
}

Napi::Value OnDomainLifecycle(Connection& self, const Napi::CallbackInfo& info) {
  return SubscribeLifecycle(info.Env(), self.state(), ArgFunction(info, 0, "callback"));
}

Napi::Value OffDomainLifecycle(Connection& self, const Napi::CallbackInfo& info) {
  return UnsubscribeLifecycle(info.Env(), self.state(), ArgInt(info, 0, "id"));
}

// ---- class definition -----------------------------------------------------------------------------

Napi::Function Connection::Define(Napi::Env env) {
  using H = Connection;
  return DefineClass(
      env, "LibvirtConnection",
      {
          VMFLOW_CUSTOM("close", Close),
          VMFLOW_CUSTOM("isAlive", IsAlive),
          H::InstanceMethod("getHostname", &H::OwnedString<virConnectGetHostname>),
          H::InstanceMethod("getURI", &H::OwnedString<virConnectGetURI>),
          H::InstanceMethod("getCapabilities", &H::OwnedString<virConnectGetCapabilities>),
          VMFLOW_CUSTOM("getNodeInfo", GetNodeInfo),
          VMFLOW_CUSTOM("getFreeMemory", GetFreeMemory),
          VMFLOW_CUSTOM("getDomainCapabilities", GetDomainCapabilities),
          VMFLOW_CUSTOM("getLibVersion", GetLibVersion),
          VMFLOW_CUSTOM("getVersion", GetVersion),
          VMFLOW_CUSTOM("setKeepAlive", SetKeepAlive),
          // domains
          H::InstanceMethod("defineDomain", &H::ByStringFlags<virDomain, virDomainDefineXMLFlags>),
          H::InstanceMethod("lookupDomainByName", &H::ByString<virDomain, virDomainLookupByName>),
          H::InstanceMethod("lookupDomainByUUID", &H::ByString<virDomain, virDomainLookupByUUIDString>),
          VMFLOW_CUSTOM("lookupDomainByID", LookupDomainByID),
          H::InstanceMethod("listAllDomains", &H::ListAll<virDomain, virConnectListAllDomains>),
          VMFLOW_CUSTOM("getAllDomainStats", GetAllDomainStats),
          VMFLOW_CUSTOM("onDomainLifecycle", OnDomainLifecycle),
          VMFLOW_CUSTOM("offDomainLifecycle", OffDomainLifecycle),
          // networks
          H::InstanceMethod("defineNetwork", &H::ByStringFlags<virNetwork, virNetworkDefineXMLFlags>),
          H::InstanceMethod("lookupNetworkByName", &H::ByString<virNetwork, virNetworkLookupByName>),
          H::InstanceMethod("lookupNetworkByUUID", &H::ByString<virNetwork, virNetworkLookupByUUIDString>),
          H::InstanceMethod("listAllNetworks", &H::ListAll<virNetwork, virConnectListAllNetworks>),
          // nwfilters and their bindings
          H::InstanceMethod("defineNWFilter", &H::ByStringFlags<virNWFilter, virNWFilterDefineXMLFlags>),
          H::InstanceMethod("lookupNWFilterByName", &H::ByString<virNWFilter, virNWFilterLookupByName>),
          H::InstanceMethod("lookupNWFilterByUUID", &H::ByString<virNWFilter, virNWFilterLookupByUUIDString>),
          H::InstanceMethod("listAllNWFilters", &H::ListAll<virNWFilter, virConnectListAllNWFilters>),
          H::InstanceMethod("createNWFilterBinding", &H::ByStringFlags<virNWFilterBinding, virNWFilterBindingCreateXML>),
          H::InstanceMethod("lookupNWFilterBindingByPortDev",
                            &H::ByString<virNWFilterBinding, virNWFilterBindingLookupByPortDev>),
          H::InstanceMethod("listAllNWFilterBindings",
                            &H::ListAll<virNWFilterBinding, virConnectListAllNWFilterBindings>),
          // storage
          H::InstanceMethod("definePool", &H::ByStringFlags<virStoragePool, virStoragePoolDefineXML>),
          H::InstanceMethod("lookupPoolByName", &H::ByString<virStoragePool, virStoragePoolLookupByName>),
          H::InstanceMethod("lookupPoolByUUID", &H::ByString<virStoragePool, virStoragePoolLookupByUUIDString>),
          H::InstanceMethod("listAllPools", &H::ListAll<virStoragePool, virConnectListAllStoragePools>),
          H::InstanceMethod("lookupVolumeByPath", &H::ByString<virStorageVol, virStorageVolLookupByPath>),
      });
}

Napi::Value Connection::New(Napi::Env env, Owned<virConnect> conn, CloseCallbackData* closeData) {
  auto state = std::make_shared<ConnState>(conn.release(), closeData);
  return Data(env).connectionCtor.New({Napi::External<std::shared_ptr<ConnState>>::New(env, &state)});
}

/** open(uri, flags, onClose(reason)) → Promise<Connection>. */
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] {
    std::string uri = ArgString(info, 0, "uri");
    uint32_t flags = ArgFlags(info, 1);
    CloseCallbackData* closeData = NewCloseCallback(env, ArgFunction(info, 2, "onClose"));
    return RunAsync(env, [uri = std::move(uri), flags, closeData]() {
      virConnectPtr c = virConnectOpenAuth(uri.c_str(), nullptr, flags);
      if (c == nullptr) {
        ErrorInfo e = LastError("virConnectOpenAuth");
        FreeCloseCallback(closeData);
        throw Failure(std::move(e));
      }
      Owned<virConnect> conn(c);
      CloseCallbackData* registered = closeData;
      if (!RegisterCloseCallback(c, closeData)) {
        FreeCloseCallback(closeData);
        registered = nullptr;
      }
      return [conn = std::move(conn), registered](Napi::Env env) mutable -> Napi::Value {
        return Connection::New(env, std::move(conn), registered);
      };
    });
  });
}

}  // namespace

void RegisterConnection(Napi::Env env, Napi::Object exports) {
  Data(env).connectionCtor = Napi::Persistent(Connection::Define(env));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
}

}  // namespace vmflow
