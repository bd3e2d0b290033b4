#include "package/zip_writer.hpp"

#include "package/error.hpp"

#include <fmt/format.h>

#include <sys/stat.h>
#include <zip.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

namespace funcie::package {

namespace {

// The fixed timestamp as a time_t that libzip turns back into the same local DOS date.
std::time_t fixed_time() {
  std::tm tm{};
  tm.tm_year = zip_entry_year - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 1;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

std::uint32_t external_attributes(const zip_entry& e) {
  std::uint32_t type = S_IFREG;
  std::uint32_t dos = 0;
  if (e.type == zip_entry::kind::directory) {
    type = S_IFDIR;
    dos = 0x10;  // MS-DOS directory attribute
  } else if (e.type == zip_entry::kind::symlink) {
    type = S_IFLNK;
  }
  return ((type | (e.mode & 07777)) << 16) | dos;
}

class archive {
 public:
  explicit archive(const std::string& path) : path_(path) {
    int error = 0;
    zip_ = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    if (zip_ == nullptr) {
      zip_error_t ze;
      zip_error_init_with_code(&ze, error);
      const std::string why = zip_error_strerror(&ze);
      zip_error_fini(&ze);
      throw package_error(fmt::format("cannot write {}: {}", path, why));
    }
  }
  ~archive() {
    if (zip_ != nullptr) zip_discard(zip_);
  }
  archive(const archive&) = delete;
  archive& operator=(const archive&) = delete;

  void add(const zip_entry& e, std::time_t when) {
    zip_int64_t index = -1;
    if (e.type == zip_entry::kind::directory) {
      index = zip_dir_add(zip_, e.name.c_str(), ZIP_FL_ENC_UTF_8);
    } else {
      zip_source_t* source = zip_source_buffer(zip_, e.data.data(), e.data.size(), 0);
      if (source == nullptr) fail(e.name);
      index = zip_file_add(zip_, e.name.c_str(), source, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
      if (index < 0) {
        zip_source_free(source);
        fail(e.name);
      }
      const bool deflate = e.type == zip_entry::kind::file;
      if (zip_set_file_compression(zip_, static_cast<zip_uint64_t>(index),
                                   deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, deflate ? 9 : 0) != 0) {
        fail(e.name);
      }
    }
    if (index < 0) fail(e.name);
    const auto i = static_cast<zip_uint64_t>(index);
    if (zip_file_set_external_attributes(zip_, i, 0, ZIP_OPSYS_UNIX, external_attributes(e)) != 0 ||
        zip_file_set_mtime(zip_, i, when, 0) != 0) {
      fail(e.name);
    }
  }

  void close() {
    if (zip_close(zip_) != 0) {
      const std::string why = zip_strerror(zip_);
      throw package_error(fmt::format("cannot write {}: {}", path_, why));
    }
    zip_ = nullptr;
  }

 private:
  [[noreturn]] void fail(const std::string& name) {
    throw package_error(fmt::format("cannot add {} to {}: {}", name, path_, zip_strerror(zip_)));
  }

  std::string path_;
  zip_t* zip_ = nullptr;
};

}  // namespace

std::uint64_t write_zip(const std::string& path, std::vector<zip_entry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const zip_entry& a, const zip_entry& b) { return a.name < b.name; });
  const std::time_t when = fixed_time();
  {
    archive zip(path);
    for (const auto& e : entries) zip.add(e, when);
    zip.close();
  }
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw package_error(fmt::format("cannot read back {}: {}", path, ec.message()));
  return size;
}

}  // namespace funcie::package
