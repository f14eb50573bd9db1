// Domain wrapper: lifecycle, queries, live changes, devices, guest agent, stats.
#include <libvirt/libvirt-qemu.h>

#include "handles.h"

namespace vmflow {
namespace {

using H = Handle<virDomain>;

Napi::Value GetID(H& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virDomainPtr d) {
    unsigned int id = virDomainGetID(d);
    return ResolveNumber(id == static_cast<unsigned int>(-1) ? -1 : static_cast<double>(id));  // -1: inactive
  });
}

Napi::Value GetInfo(H& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virDomainPtr d) {
    virDomainInfo di{};
    Check(virDomainGetInfo(d, &di), "virDomainGetInfo");
    return [di](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("state", static_cast<double>(di.state));
      o.Set("maxMemoryKiB", static_cast<double>(di.maxMem));
      o.Set("memoryKiB", static_cast<double>(di.memory));
      o.Set("vcpus", static_cast<double>(di.nrVirtCpu));
      o.Set("cpuTimeNs", static_cast<double>(di.cpuTime));
      return o;
    };
  });
}

Napi::Value GetState(H& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virDomainPtr d) {
    int state = 0;
    int reason = 0;
    Check(virDomainGetState(d, &state, &reason, 0), "virDomainGetState");
    return [state, reason](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("state", state);
      o.Set("reason", reason);
      return o;
    };
  });
}

Napi::Value SetVcpus(H& self, const Napi::CallbackInfo& info) {
  uint32_t n = ArgUint(info, 0, "count");
  uint32_t flags = ArgFlags(info, 1);
  return self.Run(info.Env(), [n, flags](virDomainPtr d) {
    Check(virDomainSetVcpusFlags(d, n, flags), "virDomainSetVcpusFlags");
    return ResolveUndefined();
  });
}

Napi::Value SetMemory(H& self, const Napi::CallbackInfo& info) {
  auto kib = static_cast<unsigned long>(ArgSize(info, 0, "kib"));
  uint32_t flags = ArgFlags(info, 1);
  return self.Run(info.Env(), [kib, flags](virDomainPtr d) {
    Check(virDomainSetMemoryFlags(d, kib, flags), "virDomainSetMemoryFlags");
    return ResolveUndefined();
  });
}

Napi::Value SetMaxMemory(H& self, const Napi::CallbackInfo& info) {
  auto kib = static_cast<unsigned long>(ArgSize(info, 0, "kib"));
  return self.Run(info.Env(), [kib](virDomainPtr d) {
    Check(virDomainSetMaxMemory(d, kib), "virDomainSetMaxMemory");
    return ResolveUndefined();
  });
}

Napi::Value BlockResize(H& self, const Napi::CallbackInfo& info) {
  std::string disk = ArgString(info, 0, "disk");
  unsigned long long size = ArgSize(info, 1, "bytes");
  uint32_t flags = ArgFlags(info, 2) | VIR_DOMAIN_BLOCK_RESIZE_BYTES;  // sizes are bytes, never KiB
  return self.Run(info.Env(), [disk = std::move(disk), size, flags](virDomainPtr d) {
    Check(virDomainBlockResize(d, disk.c_str(), size, flags), "virDomainBlockResize");
    return ResolveUndefined();
  });
}

Napi::Value QemuAgentCommand(H& self, const Napi::CallbackInfo& info) {
  std::string cmd = ArgString(info, 0, "command");
  int timeout = ArgInt(info, 1, "timeoutSec");
  uint32_t flags = ArgFlags(info, 2);
  return self.Run(info.Env(), [cmd = std::move(cmd), timeout, flags](virDomainPtr d) {
    return ResolveString(TakeString(virDomainQemuAgentCommand(d, cmd.c_str(), timeout, flags), "virDomainQemuAgentCommand"));
  });
}

struct InterfaceAddresses {
  struct Addr {
    int type;
    std::string addr;
    unsigned int prefix;
  };
  std::string name;
  std::string hwaddr;
  std::vector<Addr> addrs;
};

Napi::Value GetInterfaceAddresses(H& self, const Napi::CallbackInfo& info) {
  uint32_t source = ArgFlags(info, 0);
  return self.Run(info.Env(), [source](virDomainPtr d) {
    virDomainInterfacePtr* ifaces = nullptr;
    int n = Check(virDomainInterfaceAddresses(d, &ifaces, source, 0), "virDomainInterfaceAddresses");
    std::vector<InterfaceAddresses> out;
    for (int i = 0; i < n; ++i) {
      InterfaceAddresses ia;
      ia.name = ifaces[i]->name != nullptr ? ifaces[i]->name : "";
      ia.hwaddr = ifaces[i]->hwaddr != nullptr ? ifaces[i]->hwaddr : "";
      for (unsigned int j = 0; j < ifaces[i]->naddrs; ++j) {
        const virDomainIPAddress& a = ifaces[i]->addrs[j];
        ia.addrs.push_back({a.type, a.addr != nullptr ? a.addr : "", a.prefix});
      }
      out.push_back(std::move(ia));
      virDomainInterfaceFree(ifaces[i]);
    }
    free(ifaces);
    return [out = std::move(out)](Napi::Env env) -> Napi::Value {
      Napi::Array arr = Napi::Array::New(env, out.size());
      for (size_t i = 0; i < out.size(); ++i) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", out[i].name);
        o.Set("hwaddr", out[i].hwaddr);
        Napi::Array addrs = Napi::Array::New(env, out[i].addrs.size());
        for (size_t j = 0; j < out[i].addrs.size(); ++j) {
          Napi::Object a = Napi::Object::New(env);
          a.Set("type", out[i].addrs[j].type);
          a.Set("addr", out[i].addrs[j].addr);
          a.Set("prefix", out[i].addrs[j].prefix);
          addrs.Set(static_cast<uint32_t>(j), a);
        }
        o.Set("addrs", addrs);
        arr.Set(static_cast<uint32_t>(i), o);
      }
      return arr;
    };
  });
}

Napi::Value GetStats(H& self, const Napi::CallbackInfo& info) {
  uint32_t stats = ArgFlags(info, 0);
  uint32_t flags = ArgFlags(info, 1);
  return self.Run(info.Env(), [stats, flags](virDomainPtr d) {
    virDomainPtr doms[] = {d, nullptr};
    virDomainStatsRecordPtr* records = nullptr;
    int n = Check(virDomainListGetStats(doms, stats, &records, flags), "virDomainListGetStats");
    TypedParams params;
    if (n > 0) params = CopyTypedParams(records[0]->params, records[0]->nparams);
    virDomainStatsRecordListFree(records);
    return [params = std::move(params)](Napi::Env env) -> Napi::Value { return TypedParamsToObject(env, params); };
  });
}

Napi::Value GetMetadata(H& self, const Napi::CallbackInfo& info) {
  int type = ArgInt(info, 0, "type");
  std::optional<std::string> uri = ArgOptString(info, 1, "uri");
  uint32_t flags = ArgFlags(info, 2);
  return self.Run(info.Env(), [type, uri = std::move(uri), flags](virDomainPtr d) {
    char* s = virDomainGetMetadata(d, type, uri ? uri->c_str() : nullptr, flags);
    return ResolveString(TakeString(s, "virDomainGetMetadata"));
  });
}

Napi::Value SetMetadata(H& self, const Napi::CallbackInfo& info) {
  int type = ArgInt(info, 0, "type");
  std::optional<std::string> metadata = ArgOptString(info, 1, "metadata");
  std::optional<std::string> key = ArgOptString(info, 2, "key");
  std::optional<std::string> uri = ArgOptString(info, 3, "uri");
  uint32_t flags = ArgFlags(info, 4);
  return self.Run(info.Env(), [=](virDomainPtr d) {
    Check(virDomainSetMetadata(d, type, metadata ? metadata->c_str() : nullptr, key ? key->c_str() : nullptr,
                               uri ? uri->c_str() : nullptr, flags),
          "virDomainSetMetadata");
    return ResolveUndefined();
  });
}

}  // namespace

template <>
std::vector<H::Descriptor> H::Methods() {
  return {
      VMFLOW_M("getName", BorrowedString, virDomainGetName),
      VMFLOW_M("getUUID", UUID, virDomainGetUUIDString),
      VMFLOW_CUSTOM("getID", GetID),
      VMFLOW_M("start", VoidFlags, virDomainCreateWithFlags),
      VMFLOW_M("shutdown", VoidFlags, virDomainShutdownFlags),
      VMFLOW_M("destroy", VoidFlags, virDomainDestroyFlags),
      VMFLOW_M("reboot", VoidFlags, virDomainReboot),
      VMFLOW_M("reset", VoidFlags, virDomainReset),
      VMFLOW_M("suspend", Void, virDomainSuspend),
      VMFLOW_M("resume", Void, virDomainResume),
      VMFLOW_M("undefine", VoidFlags, virDomainUndefineFlags),
      VMFLOW_CUSTOM("getInfo", GetInfo),
      VMFLOW_CUSTOM("getState", GetState),
      VMFLOW_M("isActive", Bool, virDomainIsActive),
      VMFLOW_M("isPersistent", Bool, virDomainIsPersistent),
      VMFLOW_M("getAutostart", GetFlag, virDomainGetAutostart),
      VMFLOW_M("setAutostart", SetFlag, virDomainSetAutostart),
      VMFLOW_M("getXML", StringFlags, virDomainGetXMLDesc),
      VMFLOW_CUSTOM("setVcpus", SetVcpus),
      VMFLOW_M("getVcpus", IntFlags, virDomainGetVcpusFlags),
      VMFLOW_CUSTOM("setMemory", SetMemory),
      VMFLOW_CUSTOM("setMaxMemory", SetMaxMemory),
      VMFLOW_M("attachDevice", XmlArgFlags, virDomainAttachDeviceFlags),
      VMFLOW_M("detachDevice", XmlArgFlags, virDomainDetachDeviceFlags),
      VMFLOW_M("updateDevice", XmlArgFlags, virDomainUpdateDeviceFlags),
      VMFLOW_CUSTOM("blockResize", BlockResize),
      VMFLOW_CUSTOM("qemuAgentCommand", QemuAgentCommand),
      VMFLOW_CUSTOM("getInterfaceAddresses", GetInterfaceAddresses),
      VMFLOW_CUSTOM("getStats", GetStats),
      VMFLOW_M("managedSave", VoidFlags, virDomainManagedSave),
      VMFLOW_M("hasManagedSaveImage", BoolFlags, virDomainHasManagedSaveImage),
      VMFLOW_M("managedSaveRemove", VoidFlags, virDomainManagedSaveRemove),
      VMFLOW_CUSTOM("getMetadata", GetMetadata),
      VMFLOW_CUSTOM("setMetadata", SetMetadata),
  };
}

void RegisterDomain(Napi::Env env) { H::Register(env, "LibvirtDomain"); }

}  // namespace vmflow
