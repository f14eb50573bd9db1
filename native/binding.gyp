{
  # vmflow's libvirt binding. Build: npm run build:native (node-gyp rebuild --directory native).
  # Links Debian's libvirt-dev through pkg-config; libvirt-qemu for virDomainQemuAgentCommand.
  "targets": [
    {
      "target_name": "vmflow_libvirt",
      "sources": [
        "src/addon.cc",
        "src/connection.cc",
        "src/domain.cc",
        "src/events.cc",
        "src/network.cc",
        "src/nwfilter.cc",
        "src/storage.cc",
        "src/stream.cc",
        "src/util.cc"
      ],
      # C++ exceptions on (NAPI_CPP_EXCEPTIONS comes with node_addon_api_except).
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": [
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "<!@(pkg-config --cflags libvirt libvirt-qemu)"
      ],
      "libraries": ["<!@(pkg-config --libs libvirt libvirt-qemu)"]
    }
  ]
}
