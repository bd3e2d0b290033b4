// funcie package (src/package/): ELF headers, the loader's --list output, what goes where in
// each zip, the zip writer read back with libzip, and make_package on /bin/true and on fake
// ELF files (another architecture, a static binary).
#include "package/package.hpp"
#include "package/deps.hpp"
#include "package/elf.hpp"
#include "package/error.hpp"
#include "package/run.hpp"
#include "package/zip_writer.hpp"

#include <gtest/gtest.h>

#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

namespace pkg = funcie::package;
namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

// A 64-bit little-endian ELF header of `machine` with no program headers: "static".
std::string fake_elf(std::uint16_t machine, std::uint16_t type = ET_EXEC) {
  Elf64_Ehdr h{};
  std::memcpy(h.e_ident, ELFMAG, SELFMAG);
  h.e_ident[EI_CLASS] = ELFCLASS64;
  h.e_ident[EI_DATA] = ELFDATA2LSB;
  h.e_ident[EI_VERSION] = EV_CURRENT;
  h.e_type = type;
  h.e_machine = machine;
  h.e_version = EV_CURRENT;
  h.e_ehsize = sizeof(Elf64_Ehdr);
  h.e_phentsize = sizeof(Elf64_Phdr);
  std::string bytes(sizeof h, '\0');
  std::memcpy(bytes.data(), &h, sizeof h);
  return bytes;
}

// One entry of a zip as libzip reads it back.
struct read_entry {
  std::string data;
  std::uint32_t attributes = 0;
  std::uint8_t opsys = 0;
  std::time_t mtime = 0;
};

std::map<std::string, read_entry> read_zip(const std::string& path) {
  int error = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_RDONLY, &error);
  EXPECT_NE(zip, nullptr) << error;
  std::map<std::string, read_entry> out;
  if (zip == nullptr) return out;
  for (zip_int64_t i = 0; i < zip_get_num_entries(zip, 0); ++i) {
    const auto index = static_cast<zip_uint64_t>(i);
    zip_stat_t st;
    zip_stat_index(zip, index, 0, &st);
    read_entry e;
    zip_file_get_external_attributes(zip, index, 0, &e.opsys, &e.attributes);
    e.mtime = st.mtime;
    if (zip_file_t* f = zip_fopen_index(zip, index, 0)) {
      e.data.resize(st.size);
      zip_fread(f, e.data.data(), st.size);
      zip_fclose(f);
    }
    out[st.name] = e;
  }
  zip_discard(zip);
  return out;
}

pkg::package_options options(std::string binary, std::string output,
                             pkg::package_kind kind = pkg::package_kind::function,
                             bool strip = true) {
  pkg::package_options o;
  o.kind = kind;
  o.binary = std::move(binary);
  o.output = std::move(output);
  o.strip = strip;
  return o;
}

class PackageDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/funcie-package-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST(PackageElf, ReadsThisBinarysMachineAndLoader) {
  const auto info = pkg::parse_elf(read_all("/proc/self/exe"), "self");
  ASSERT_TRUE(info.interpreter.has_value());
  EXPECT_EQ(info.interpreter->front(), '/');
  EXPECT_NE(info.interpreter->find("ld-linux"), std::string::npos) << *info.interpreter;
#if defined(__x86_64__)
  EXPECT_EQ(info.machine, EM_X86_64);
  EXPECT_EQ(pkg::machine_name(info.machine), "x86_64");
#endif
}

TEST(PackageElf, SaysWhatIsWrong) {
  auto message = [](const std::string& bytes) {
    try {
      pkg::parse_elf(bytes, "f");
    } catch (const pkg::package_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("#!/bin/sh\necho hi\n"), "f is not an ELF executable");
  EXPECT_EQ(message(""), "f is not an ELF executable");
  std::string elf32 = fake_elf(EM_X86_64);
  elf32[EI_CLASS] = ELFCLASS32;
  EXPECT_NE(message(elf32).find("32-bit"), std::string::npos);
  EXPECT_NE(message(fake_elf(EM_X86_64).substr(0, 30)).find("truncated"), std::string::npos);
  EXPECT_NE(message(fake_elf(EM_X86_64, ET_CORE)).find("not a program"), std::string::npos);
  // Program headers that point past the end.
  std::string bad = fake_elf(EM_X86_64);
  Elf64_Ehdr h;
  std::memcpy(&h, bad.data(), sizeof h);
  h.e_phnum = 3;
  h.e_phoff = 4096;
  std::memcpy(bad.data(), &h, sizeof h);
  EXPECT_NE(message(bad).find("truncated"), std::string::npos);
}

TEST(PackageElf, StaticBinaryHasNoInterpreter) {
  const auto info = pkg::parse_elf(fake_elf(EM_AARCH64), "f");
  EXPECT_FALSE(info.interpreter.has_value());
  EXPECT_EQ(pkg::machine_name(info.machine), "aarch64");
  EXPECT_EQ(pkg::machine_name(9999), "machine 9999");
}

TEST(PackageDeps, ParsesTheLoadersList) {
  const auto listed = pkg::parse_loader_list(
      "\tlinux-vdso.so.1 (0x00007ffd5b1f2000)\n"
      "\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f0e2c8a0000)\n"
      "\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f0e2c600000)\n"
      "\tlibgone.so.1 => not found\n"
      "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e2c41f000)\n"
      "\t/lib64/ld-linux-x86-64.so.2 (0x00007f0e2cb4a000)\n"
      "\tlibspace.so => /opt/my libs/libspace.so (0x1)\n");
  const std::vector<pkg::library> want{
      {"libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3"},
      {"libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6"},
      {"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"},
      {"libspace.so", "/opt/my libs/libspace.so"},
  };
  EXPECT_EQ(listed.libraries, want);
  EXPECT_EQ(listed.missing, std::vector<std::string>{"libgone.so.1"});
  EXPECT_TRUE(pkg::parse_loader_list("\tstatically linked\n").libraries.empty());
}

TEST(PackageLayout, EachKindHasItsPlace) {
  const auto function = pkg::layout_of(pkg::package_kind::function);
  EXPECT_EQ(function.executable, "bootstrap");
  EXPECT_EQ(function.bundle_path(), "/var/task/bundle");
  const auto proxy = pkg::layout_of(pkg::package_kind::proxy);
  EXPECT_EQ(proxy.executable, "bootstrap");
  const auto layer = pkg::layout_of(pkg::package_kind::layer);
  EXPECT_EQ(layer.executable, "funcie-wrapper");
  EXPECT_EQ(layer.bundle_path(), "/opt/funcie/bundle");
  ASSERT_EQ(layer.symlinks.size(), 1u);
  EXPECT_EQ(layer.symlinks[0].name, "funcie/bin/funcie");
  EXPECT_EQ(layer.symlinks[0].data, "../../funcie-wrapper");
  // Never where Lambda's LD_LIBRARY_PATH looks (/var/task/lib, /opt/lib).
  for (const auto& l : {function, layer}) EXPECT_NE(l.bundle, "lib");
}

TEST(PackageLayout, PlansLoaderAndLibrariesOnce) {
  const auto files = pkg::plan_files(pkg::layout_of(pkg::package_kind::function), "/build/hello",
                                     "/lib64/ld-linux-x86-64.so.2",
                                     {{"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"},
                                      {"ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"},
                                      {"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"},
                                      {"libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6"}});
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(files[0].name, "bootstrap");
  EXPECT_EQ(files[0].source, "/build/hello");
  EXPECT_EQ(files[0].mode, 0755u);
  EXPECT_EQ(files[1].name, "bundle/ld-linux-x86-64.so.2");
  EXPECT_EQ(files[1].mode, 0755u);
  EXPECT_EQ(files[2].name, "bundle/libc.so.6");
  EXPECT_EQ(files[2].mode, 0644u);
  EXPECT_EQ(files[3].name, "bundle/libm.so.6");
  // Static: the binary alone.
  EXPECT_EQ(
      pkg::plan_files(pkg::layout_of(pkg::package_kind::proxy), "/f", std::nullopt, {}).size(), 1u);
}

TEST_F(PackageDir, ZipKeepsModesSymlinksAndIsDeterministic) {
  const std::vector<pkg::zip_entry> entries{
      {.name = "bootstrap", .type = pkg::zip_entry::kind::file, .mode = 0755, .data = "#!x"},
      {.name = "lib", .type = pkg::zip_entry::kind::directory, .mode = 0755, .data = {}},
      {.name = "lib/libz.so",
       .type = pkg::zip_entry::kind::file,
       .mode = 0644,
       .data = std::string(100000, 'z')},
      {.name = "link", .type = pkg::zip_entry::kind::symlink, .mode = 0777, .data = "bootstrap"},
  };
  const std::string a = (dir_ / "a.zip").string();
  const std::string b = (dir_ / "b.zip").string();
  const auto size = pkg::write_zip(a, entries);
  EXPECT_EQ(size, fs::file_size(a));
  EXPECT_LT(size, 10000u) << "files are deflated";
  // The same bytes in another order, another time zone, a second later.
  const char* tz = std::getenv("TZ");
  const std::string saved = tz != nullptr ? tz : "";
  ::setenv("TZ", "America/Los_Angeles", 1);
  ::tzset();
  ::sleep(1);
  pkg::write_zip(b, {entries[3], entries[2], entries[1], entries[0]});
  if (tz != nullptr) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
  EXPECT_EQ(read_all(a), read_all(b)) << "deterministic";

  const auto read = read_zip(a);
  ASSERT_EQ(read.size(), 4u);
  EXPECT_EQ(read.at("bootstrap").opsys, ZIP_OPSYS_UNIX);
  EXPECT_EQ(read.at("bootstrap").attributes >> 16, S_IFREG | 0755u);
  EXPECT_EQ(read.at("bootstrap").data, "#!x");
  EXPECT_EQ(read.at("lib/").attributes >> 16, S_IFDIR | 0755u);
  EXPECT_EQ(read.at("lib/libz.so").attributes >> 16, S_IFREG | 0644u);
  EXPECT_EQ(read.at("lib/libz.so").data, std::string(100000, 'z'));
  EXPECT_EQ(read.at("link").attributes >> 16, S_IFLNK | 0777u);
  EXPECT_EQ(read.at("link").data, "bootstrap");
  std::tm tm{};
  const std::time_t when = read.at("bootstrap").mtime;
  ::localtime_r(&when, &tm);
  EXPECT_EQ(tm.tm_year + 1900, pkg::zip_entry_year);
  EXPECT_EQ(tm.tm_mon, 0);
  EXPECT_EQ(tm.tm_mday, 1);
}

TEST_F(PackageDir, ZipToAMissingDirectoryFails) {
  EXPECT_THROW(pkg::write_zip(
                   (dir_ / "no/such/dir/x.zip").string(),
                   {{.name = "a", .type = pkg::zip_entry::kind::file, .mode = 0644, .data = "a"}}),
               pkg::package_error);
}

TEST_F(PackageDir, MakePackageSaysWhatIsWrong) {
  auto message = [](const pkg::package_options& options) {
    try {
      pkg::make_package(options);
    } catch (const pkg::package_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string out = (dir_ / "f.zip").string();
  EXPECT_EQ(message(options((dir_ / "nope").string(), out)),
            (dir_ / "nope").string() + ": no such file");
  write_all(dir_ / "script", "#!/bin/sh\n");
  EXPECT_NE(message(options((dir_ / "script").string(), out)).find("not an ELF"),
            std::string::npos);
  write_all(dir_ / "arm", fake_elf(EM_AARCH64));
  const auto arm = message(options((dir_ / "arm").string(), out));
  EXPECT_NE(arm.find("built for aarch64"), std::string::npos) << arm;
  EXPECT_NE(message(options("/bin/true", (dir_ / "no/dir/f.zip").string())).find("not a directory"),
            std::string::npos);
  EXPECT_NE(message(options("/bin/true", dir_.string())).find("is a directory"), std::string::npos);
  EXPECT_NE(message(options("/bin/true", "")).find("no output"), std::string::npos);
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(PackageDir, StaticBinaryIsPackagedAlone) {
#if defined(__x86_64__)
  write_all(dir_ / "static", fake_elf(EM_X86_64));
  const auto summary = pkg::make_package(options(
      (dir_ / "static").string(), (dir_ / "s.zip").string(), pkg::package_kind::function, false));
  EXPECT_FALSE(summary.interpreter.has_value());
  const auto read = read_zip((dir_ / "s.zip").string());
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read.at("bootstrap").attributes >> 16, S_IFREG | 0755u);
  EXPECT_EQ(read.at("bootstrap").data, fake_elf(EM_X86_64));
#endif
}

TEST_F(PackageDir, DynamicBinaryGetsItsLoaderAndLibraries) {
  if (pkg::find_in_path("patchelf").empty() || pkg::find_in_path("strip").empty()) {
    GTEST_SKIP() << "patchelf or strip not installed (scripts/deps.sh)";
  }
  const std::string out = (dir_ / "true.zip").string();
  const auto summary = pkg::make_package(options("/bin/true", out, pkg::package_kind::layer));
  ASSERT_TRUE(summary.interpreter.has_value());
  EXPECT_TRUE(summary.interpreter->starts_with("/opt/funcie/bundle/ld-linux"))
      << *summary.interpreter;
  const auto read = read_zip(out);
  ASSERT_TRUE(read.contains("funcie-wrapper"));
  ASSERT_TRUE(read.contains("funcie/bundle/libc.so.6"));
  ASSERT_TRUE(read.contains("funcie/bin/funcie"));
  EXPECT_EQ(read.at("funcie/bin/funcie").attributes >> 16, S_IFLNK | 0777u);
  const auto info = pkg::parse_elf(read.at("funcie-wrapper").data, "funcie-wrapper");
  EXPECT_EQ(info.interpreter, summary.interpreter);
  const std::string loader = "funcie/bundle/" + fs::path(*info.interpreter).filename().string();
  ASSERT_TRUE(read.contains(loader));
  EXPECT_EQ(read.at(loader).attributes >> 16, S_IFREG | 0755u);
  EXPECT_EQ(read.at(loader).data,
            read_all(pkg::parse_elf(read_all("/bin/true"), "t").interpreter.value()));
  // DT_RPATH (not DT_RUNPATH) names the bundle.
  write_all(dir_ / "wrapper", read.at("funcie-wrapper").data);
  const auto dynamic = pkg::run_checked({"readelf", "-d", (dir_ / "wrapper").string()}, "");
  EXPECT_NE(dynamic.find("(RPATH)              Library rpath: [/opt/funcie/bundle]"),
            std::string::npos)
      << dynamic;
  EXPECT_EQ(dynamic.find("RUNPATH"), std::string::npos) << dynamic;
  EXPECT_EQ(summary.zip_bytes, fs::file_size(out));
}
