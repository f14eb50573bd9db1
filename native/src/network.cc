// Network wrapper: lifecycle, live updates (DHCP hosts, ranges, DNS), DHCP leases.
#include "handles.h"

namespace vmflow {
namespace {

using H = Handle<virNetwork>;

Napi::Value Update(H& self, const Napi::CallbackInfo& info) {
  uint32_t command = ArgUint(info, 0, "command");
  uint32_t section = ArgUint(info, 1, "section");
  int parentIndex = ArgInt(info, 2, "parentIndex");
  std::string xml = ArgString(info, 3, "xml");
  uint32_t flags = ArgFlags(info, 4);
  return self.Run(info.Env(), [=](virNetworkPtr n) {
    Check(virNetworkUpdate(n, command, section, parentIndex, xml.c_str(), flags), "virNetworkUpdate");
    return ResolveUndefined();
  });
}

struct Lease {
  std::string iface, mac, iaid, ipaddr, hostname, clientid;
  double expirytime;
  int type;
  unsigned int prefix;
};

std::string Str(const char* s) { return s != nullptr ? s : ""; }

Napi::Value GetDHCPLeases(H& self, const Napi::CallbackInfo& info) {
  std::optional<std::string> mac = ArgOptString(info, 0, "mac");
  return self.Run(info.Env(), [mac = std::move(mac)](virNetworkPtr n) {
    virNetworkDHCPLeasePtr* leases = nullptr;
    int count = Check(virNetworkGetDHCPLeases(n, mac ? mac->c_str() : nullptr, &leases, 0), "virNetworkGetDHCPLeases");
    std::vector<Lease> out;
    for (int i = 0; i < count; ++i) {
      const virNetworkDHCPLease& l = *leases[i];
      out.push_back({Str(l.iface), Str(l.mac), Str(l.iaid), Str(l.ipaddr), Str(l.hostname), Str(l.clientid),
                     static_cast<double>(l.expirytime), l.type, l.prefix});
      virNetworkDHCPLeaseFree(leases[i]);
    }
    free(leases);
    return [out = std::move(out)](Napi::Env env) -> Napi::Value {
      Napi::Array arr = Napi::Array::New(env, out.size());
      for (size_t i = 0; i < out.size(); ++i) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("iface", out[i].iface);
        o.Set("expiryTime", out[i].expirytime);
        o.Set("type", out[i].type);
        o.Set("mac", out[i].mac);
        o.Set("iaid", out[i].iaid);
        o.Set("ipaddr", out[i].ipaddr);
        o.Set("prefix", out[i].prefix);
        o.Set("hostname", out[i].hostname);
        o.Set("clientid", out[i].clientid);
        arr.Set(static_cast<uint32_t>(i), o);
      }
      return arr;
    };
  });
}

}  // namespace

template <>
std::vector<H::Descriptor> H::Methods() {
  return {
      VMFLOW_M("getName", BorrowedString, virNetworkGetName),
      VMFLOW_M("getUUID", UUID, virNetworkGetUUIDString),
      VMFLOW_M("getBridgeName", OwnedString, virNetworkGetBridgeName),
      VMFLOW_M("create", Void, virNetworkCreate),
      VMFLOW_M("destroy", Void, virNetworkDestroy),
      VMFLOW_M("undefine", Void, virNetworkUndefine),
      VMFLOW_M("isActive", Bool, virNetworkIsActive),
      VMFLOW_M("isPersistent", Bool, virNetworkIsPersistent),
      VMFLOW_M("getAutostart", GetFlag, virNetworkGetAutostart),
      VMFLOW_M("setAutostart", SetFlag, virNetworkSetAutostart),
      VMFLOW_M("getXML", StringFlags, virNetworkGetXMLDesc),
      VMFLOW_CUSTOM("update", Update),
      VMFLOW_CUSTOM("getDHCPLeases", GetDHCPLeases),
  };
}

void RegisterNetwork(Napi::Env env) { H::Register(env, "LibvirtNetwork"); }

}  // namespace vmflow
