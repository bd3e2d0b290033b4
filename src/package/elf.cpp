#include "package/elf.hpp"

#include "package/error.hpp"

#include <fmt/format.h>

#include <elf.h>

#include <cstring>

namespace funcie::package {

namespace {

template <typename T>
T read_at(std::string_view bytes, std::uint64_t offset, const std::string& what) {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) {
    throw package_error(fmt::format("{} is truncated (an ELF header points past its end)", what));
  }
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

}  // namespace

elf_info parse_elf(std::string_view bytes, const std::string& what) {
  if (bytes.size() < EI_NIDENT || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) {
    throw package_error(fmt::format("{} is not an ELF executable", what));
  }
  if (bytes[EI_CLASS] != ELFCLASS64) {
    throw package_error(fmt::format("{} is a 32-bit ELF file: Lambda runs 64-bit code", what));
  }
  if (bytes[EI_DATA] != ELFDATA2LSB) {
    throw package_error(fmt::format("{} is a big-endian ELF file: Lambda is little-endian", what));
  }
  const auto header = read_at<Elf64_Ehdr>(bytes, 0, what);
  elf_info info;
  info.machine = header.e_machine;
  info.type = header.e_type;
  if (header.e_type != ET_EXEC && header.e_type != ET_DYN) {
    throw package_error(
        fmt::format("{} is an ELF file but not a program (type {})", what, header.e_type));
  }
  if (header.e_phnum > 0 && header.e_phentsize != sizeof(Elf64_Phdr)) {
    throw package_error(fmt::format("{} has program headers of an unknown size", what));
  }
  for (std::uint16_t i = 0; i < header.e_phnum; ++i) {
    const auto ph =
        read_at<Elf64_Phdr>(bytes, header.e_phoff + std::uint64_t{i} * sizeof(Elf64_Phdr), what);
    if (ph.p_type != PT_INTERP) continue;
    if (ph.p_offset > bytes.size() || bytes.size() - ph.p_offset < ph.p_filesz) {
      throw package_error(fmt::format("{} is truncated (its interpreter is past its end)", what));
    }
    std::string interp(bytes.substr(ph.p_offset, ph.p_filesz));
    if (const auto nul = interp.find('\0'); nul != std::string::npos) interp.resize(nul);
    if (interp.empty() || interp.front() != '/') {
      throw package_error(fmt::format("{} has an unusable interpreter '{}'", what, interp));
    }
    info.interpreter = std::move(interp);
  }
  return info;
}

std::string machine_name(std::uint16_t machine) {
  switch (machine) {
    case EM_X86_64:
      return "x86_64";
    case EM_AARCH64:
      return "aarch64";
    case EM_386:
      return "i386";
    case EM_ARM:
      return "arm";
    default:
      return fmt::format("machine {}", machine);
  }
}

}  // namespace funcie::package
