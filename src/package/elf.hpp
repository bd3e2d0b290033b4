// The few facts about an ELF file that packaging needs, read from its bytes (pure).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace funcie::package {

struct elf_info {
  std::uint16_t machine = 0;  ///< e_machine (EM_X86_64, EM_AARCH64, ...)
  std::uint16_t type = 0;     ///< e_type (ET_EXEC, ET_DYN)
  /// PT_INTERP, the dynamic loader the kernel starts; none for a static binary.
  std::optional<std::string> interpreter;
};

/// Reads a 64-bit little-endian ELF file's header and program headers. Throws package_error
/// saying what is wrong: not an ELF file, 32-bit, big-endian, truncated, a core file...
/// `what` names the file in the messages.
elf_info parse_elf(std::string_view bytes, const std::string& what);

/// "x86_64", "aarch64", or "machine 40" for the others.
std::string machine_name(std::uint16_t machine);

}  // namespace funcie::package
