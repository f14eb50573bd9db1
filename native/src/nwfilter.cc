// NWFilter and NWFilterBinding wrappers.
#include "handles.h"

namespace vmflow {

template <>
std::vector<Handle<virNWFilter>::Descriptor> Handle<virNWFilter>::Methods() {
  using H = Handle<virNWFilter>;
  return {
      VMFLOW_M("getName", BorrowedString, virNWFilterGetName),
      VMFLOW_M("getUUID", UUID, virNWFilterGetUUIDString),
      VMFLOW_M("getXML", StringFlags, virNWFilterGetXMLDesc),
      VMFLOW_M("undefine", Void, virNWFilterUndefine),
  };
}

template <>
std::vector<Handle<virNWFilterBinding>::Descriptor> Handle<virNWFilterBinding>::Methods() {
  using H = Handle<virNWFilterBinding>;
  return {
      VMFLOW_M("getPortDev", BorrowedString, virNWFilterBindingGetPortDev),
      VMFLOW_M("getFilterName", BorrowedString, virNWFilterBindingGetFilterName),
      VMFLOW_M("getXML", StringFlags, virNWFilterBindingGetXMLDesc),
      VMFLOW_M("delete", Void, virNWFilterBindingDelete),
  };
}

void RegisterNWFilter(Napi::Env env) {
  Handle<virNWFilter>::Register(env, "LibvirtNWFilter");
  Handle<virNWFilterBinding>::Register(env, "LibvirtNWFilterBinding");
}

}  // namespace vmflow
