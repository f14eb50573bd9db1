// StoragePool and StorageVolume wrappers.
#include "handles.h"

namespace vmflow {
namespace {

using Pool = Handle<virStoragePool>;
using Vol = Handle<virStorageVol>;

Napi::Value PoolGetInfo(Pool& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virStoragePoolPtr p) {
    virStoragePoolInfo pi{};
    Check(virStoragePoolGetInfo(p, &pi), "virStoragePoolGetInfo");
    return [pi](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("state", pi.state);
      o.Set("capacity", static_cast<double>(pi.capacity));
      o.Set("allocation", static_cast<double>(pi.allocation));
      o.Set("available", static_cast<double>(pi.available));
      return o;
    };
  });
}

Napi::Value CreateVolume(Pool& self, const Napi::CallbackInfo& info) {
  std::string xml = ArgString(info, 0, "xml");
  uint32_t flags = ArgFlags(info, 1);
  return self.Run(info.Env(), [xml = std::move(xml), flags, st = self.conn()](virStoragePoolPtr p) mutable {
    Owned<virStorageVol> v(CheckPtr(virStorageVolCreateXML(p, xml.c_str(), flags), "virStorageVolCreateXML"));
    return ResolveHandle(std::move(st), std::move(v));
  });
}

Napi::Value CloneVolume(Pool& self, const Napi::CallbackInfo& info) {
  std::string xml = ArgString(info, 0, "xml");
  Vol& source = Vol::From(info.Env(), info[1], "source");
  uint32_t flags = ArgFlags(info, 2);
  if (source.get() == nullptr) return Rejected(info.Env(), ClosedError());
  return self.Run(info.Env(), [xml = std::move(xml), flags, src = Owned<virStorageVol>::Share(source.get()),
                               st = self.conn()](virStoragePoolPtr p) mutable {
    Owned<virStorageVol> v(
        CheckPtr(virStorageVolCreateXMLFrom(p, xml.c_str(), src.get(), flags), "virStorageVolCreateXMLFrom"));
    return ResolveHandle(std::move(st), std::move(v));
  });
}

Napi::Value LookupVolumeByName(Pool& self, const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  return self.Run(info.Env(), [name = std::move(name), st = self.conn()](virStoragePoolPtr p) mutable {
    Owned<virStorageVol> v(CheckPtr(virStorageVolLookupByName(p, name.c_str()), "virStorageVolLookupByName"));
    return ResolveHandle(std::move(st), std::move(v));
  });
}

Napi::Value ListAllVolumes(Pool& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [st = self.conn()](virStoragePoolPtr p) mutable {
    virStorageVolPtr* vols = nullptr;
    int n = Check(virStoragePoolListAllVolumes(p, &vols, 0), "virStoragePoolListAllVolumes");
    return ResolveHandles(std::move(st), TakeList(vols, n));
  });
}

Napi::Value VolGetInfo(Vol& self, const Napi::CallbackInfo& info) {
  return self.Run(info.Env(), [](virStorageVolPtr v) {
    virStorageVolInfo vi{};
    Check(virStorageVolGetInfo(v, &vi), "virStorageVolGetInfo");
    return [vi](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("type", vi.type);
      o.Set("capacity", static_cast<double>(vi.capacity));
      o.Set("allocation", static_cast<double>(vi.allocation));
      return o;
    };
  });
}

Napi::Value VolResize(Vol& self, const Napi::CallbackInfo& info) {
  unsigned long long capacity = ArgSize(info, 0, "bytes");
  uint32_t flags = ArgFlags(info, 1);
  return self.Run(info.Env(), [capacity, flags](virStorageVolPtr v) {
    Check(virStorageVolResize(v, capacity, flags), "virStorageVolResize");
    return ResolveUndefined();
  });
}

}  // namespace

std::vector<Vol::Descriptor> VolumeStreamMethods();  // stream.cc

template <>
std::vector<Pool::Descriptor> Pool::Methods() {
  using H = Pool;
  return {
      VMFLOW_M("getName", BorrowedString, virStoragePoolGetName),
      VMFLOW_M("getUUID", UUID, virStoragePoolGetUUIDString),
      VMFLOW_M("build", VoidFlags, virStoragePoolBuild),
      VMFLOW_M("create", VoidFlags, virStoragePoolCreate),
      VMFLOW_M("refresh", VoidFlags, virStoragePoolRefresh),
      VMFLOW_M("destroy", Void, virStoragePoolDestroy),
      VMFLOW_M("delete", VoidFlags, virStoragePoolDelete),
      VMFLOW_M("undefine", Void, virStoragePoolUndefine),
      VMFLOW_M("isActive", Bool, virStoragePoolIsActive),
      VMFLOW_M("isPersistent", Bool, virStoragePoolIsPersistent),
      VMFLOW_M("getAutostart", GetFlag, virStoragePoolGetAutostart),
      VMFLOW_M("setAutostart", SetFlag, virStoragePoolSetAutostart),
      VMFLOW_M("getXML", StringFlags, virStoragePoolGetXMLDesc),
      VMFLOW_CUSTOM("getInfo", PoolGetInfo),
      VMFLOW_CUSTOM("createVolume", CreateVolume),
      VMFLOW_CUSTOM("cloneVolume", CloneVolume),
      VMFLOW_CUSTOM("lookupVolumeByName", LookupVolumeByName),
      VMFLOW_CUSTOM("listAllVolumes", ListAllVolumes),
  };
}

template <>
std::vector<Vol::Descriptor> Vol::Methods() {
  using H = Vol;
  std::vector<Vol::Descriptor> methods = {
      VMFLOW_M("getName", BorrowedString, virStorageVolGetName),
      VMFLOW_M("getKey", BorrowedString, virStorageVolGetKey),
      VMFLOW_M("getPath", OwnedString, virStorageVolGetPath),
      VMFLOW_M("getXML", StringFlags, virStorageVolGetXMLDesc),
      VMFLOW_M("delete", VoidFlags, virStorageVolDelete),
      VMFLOW_CUSTOM("getInfo", VolGetInfo),
      VMFLOW_CUSTOM("resize", VolResize),
  };
  for (auto& m : VolumeStreamMethods()) methods.push_back(m);
  return methods;
}

void RegisterStorage(Napi::Env env) {
  Pool::Register(env, "LibvirtStoragePool");
  Vol::Register(env, "LibvirtStorageVolume");
}

}  // namespace vmflow
