// Storage-volume streams: upload a file's bytes into a volume, download a volume's bytes into a file.
//
// Both run entirely on the libuv thread pool with a blocking virStream (virStreamNew(conn, 0)) and a
// fixed 1 MiB buffer, so a file of any size is never held in memory. A failure at any point aborts the
// stream (virStreamAbort, which also tells libvirtd to drop its side) and rejects with the libvirt
// error; file-system errors become a LibvirtError with code SYSTEM_ERROR and the errno in int1.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "handles.h"

namespace vmflow {
namespace {

using Vol = Handle<virStorageVol>;

constexpr size_t kChunk = 1024 * 1024;

/** A file-system failure, shaped like a libvirt error (SYSTEM_ERROR, errno in int1). */
[[noreturn]] void ThrowErrno(const std::string& what, const std::string& path, int err) {
  ErrorInfo info;
  info.code = VIR_ERR_SYSTEM_ERROR;
  info.domain = VIR_FROM_NONE;
  info.message = what + " '" + path + "': " + std::strerror(err);
  info.str1 = path;
  info.int1 = err;
  throw Failure(std::move(info));
}

[[noreturn]] void ThrowMessage(int code, const std::string& message) {
  ErrorInfo info;
  info.code = code;
  info.domain = VIR_FROM_STREAMS;
  info.message = message;
  throw Failure(std::move(info));
}

/** Owns a file descriptor. */
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  /** Closes now, reporting the error (a write-back failure of a download shows up here). */
  int Close() { return close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

/**
 * Owns a stream and its outcome: unless Finish() succeeded, the destructor aborts it (a no-op on a
 * stream that never started a transfer) before freeing it, so libvirtd releases its side too.
 */
class Stream {
 public:
  explicit Stream(virConnectPtr conn) : st_(CheckPtr(virStreamNew(conn, 0), "virStreamNew")) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    // The error that made us abort was already copied into the Failure being thrown.
    if (!finished_) virStreamAbort(st_);
    virStreamFree(st_);
  }
  virStreamPtr get() const { return st_; }
  void Finish() {
    Check(virStreamFinish(st_), "virStreamFinish");
    finished_ = true;
  }

 private:
  virStreamPtr st_;
  bool finished_ = false;
};

/** Sends all `n` bytes of `buf` (virStreamSend may accept fewer than asked). */
void SendAll(virStreamPtr st, const char* buf, size_t n) {
  while (n > 0) {
    int sent = Check(virStreamSend(st, buf, n), "virStreamSend");
    if (sent == 0) ThrowMessage(VIR_ERR_RPC, "virStreamSend accepted no bytes");
    buf += sent;
    n -= static_cast<size_t>(sent);
  }
}

/** Writes all `n` bytes of `buf` to `fd` (write may write fewer; EINTR retried). */
void WriteAll(int fd, const char* buf, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("write", path, errno);
    }
    buf += w;
    n -= static_cast<size_t>(w);
  }
}

/**
 * uploadFile(path, fileOffset, volumeOffset, length): writes `length` bytes of the file, read from
 * `fileOffset`, into the volume at `volumeOffset`. Resolves to the number of bytes sent.
 */
Napi::Value VolUploadFile(Vol& self, const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  uint64_t fileOffset = ArgSize(info, 1, "fileOffset");
  uint64_t volOffset = ArgSize(info, 2, "volumeOffset");
  uint64_t length = ArgSize(info, 3, "length");
  return self.Run(info.Env(), [path = std::move(path), fileOffset, volOffset, length](virStorageVolPtr v) {
    if (length == 0) return ResolveNumber(0);  // libvirt reads 0 as "to the end": never what we mean
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) ThrowErrno("open", path, errno);
    struct stat sb {};
    if (fstat(fd.get(), &sb) < 0) ThrowErrno("stat", path, errno);
    if (static_cast<uint64_t>(sb.st_size) < fileOffset + length) {
      ThrowMessage(VIR_ERR_INVALID_ARG, "file '" + path + "' holds fewer than " + std::to_string(length) +
                                            " bytes from offset " + std::to_string(fileOffset));
    }
    // libvirt checks the offset against the capacity but not the length: a file volume would silently
    // grow past its capacity.
    virStorageVolInfo vi{};
    Check(virStorageVolGetInfo(v, &vi), "virStorageVolGetInfo");
    if (volOffset + length > vi.capacity) {
      ThrowMessage(VIR_ERR_INVALID_ARG, std::to_string(length) + " bytes from offset " + std::to_string(volOffset) +
                                            " exceed the volume's capacity of " + std::to_string(vi.capacity) +
                                            " bytes");
    }
    // virStorageVolGetConnect adds no reference: the volume reference `v` (held for this call) keeps
    // the connection alive.
    Stream st(CheckPtr(virStorageVolGetConnect(v), "virStorageVolGetConnect"));
    Check(virStorageVolUpload(v, st.get(), volOffset, length, 0), "virStorageVolUpload");
    std::vector<char> buf(kChunk);
    uint64_t done = 0;
    while (done < length) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, length - done));
      ssize_t got = pread(fd.get(), buf.data(), want, static_cast<off_t>(fileOffset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        ThrowErrno("read", path, errno);
      }
      if (got == 0) ThrowMessage(VIR_ERR_INVALID_ARG, "file '" + path + "' ended early");
      SendAll(st.get(), buf.data(), static_cast<size_t>(got));
      done += static_cast<uint64_t>(got);
    }
    st.Finish();
    return ResolveNumber(static_cast<double>(done));
  });
}

/**
 * downloadFile(path, offset, length): writes the volume's bytes from `offset` (`length` of them; 0:
 * to the end of the volume) into a new or truncated file at `path`. Resolves to the number of bytes.
 */
Napi::Value VolDownloadFile(Vol& self, const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  uint64_t offset = ArgSize(info, 1, "offset");
  uint64_t length = ArgSize(info, 2, "length");
  return self.Run(info.Env(), [path = std::move(path), offset, length](virStorageVolPtr v) {
    Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (fd.get() < 0) ThrowErrno("open", path, errno);
    Stream st(CheckPtr(virStorageVolGetConnect(v), "virStorageVolGetConnect"));
    Check(virStorageVolDownload(v, st.get(), offset, length, 0), "virStorageVolDownload");
    std::vector<char> buf(kChunk);
    uint64_t done = 0;
    for (;;) {
      int got = Check(virStreamRecv(st.get(), buf.data(), buf.size()), "virStreamRecv");
      if (got == 0) break;  // end of stream
      WriteAll(fd.get(), buf.data(), static_cast<size_t>(got), path);
      done += static_cast<uint64_t>(got);
    }
    st.Finish();
    if (fd.Close() < 0) ThrowErrno("close", path, errno);
    return ResolveNumber(static_cast<double>(done));
  });
}

}  // namespace

/** The stream methods of StorageVolume (listed in Vol::Methods, storage.cc). */
std::vector<Vol::Descriptor> VolumeStreamMethods() {
  using H = Vol;
  return {
      VMFLOW_CUSTOM("uploadFile", VolUploadFile),
      VMFLOW_CUSTOM("downloadFile", VolDownloadFile),
  };
}

}  // namespace vmflow
