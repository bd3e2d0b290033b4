# funcie_package_target(TARGET [OUTPUT FILE.zip] [LIBRARIES LIB...] [NO_STRIP])
#
# Adds the target `package-TARGET`, which makes a Lambda function zip of the executable
# TARGET with `funcie package` (docs/packaging.md): `bootstrap` (the binary, started by its
# bundled loader), the dynamic loader and every shared library it needs, for a custom
# runtime (provided.al2023). The zip is FILE.zip, by default TARGET.zip next to the binary.
# LIBRARIES: libraries the binary only dlopen's. NO_STRIP: keep the binary's debug info.
# Not part of `all`: `cmake --build build --target package-TARGET`. Needs patchelf.
#
# In this repository funcie is the target funcie_cli; find_package(funcie) sets
# FUNCIE_EXECUTABLE to the funcie installed with it; elsewhere set FUNCIE_EXECUTABLE, or
# have `funcie` in PATH.
function(funcie_package_target target)
  cmake_parse_arguments(PARSE_ARGV 1 FUNCIE_PKG "NO_STRIP" "OUTPUT" "LIBRARIES")
  if(FUNCIE_PKG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "funcie_package_target: unknown arguments ${FUNCIE_PKG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "funcie_package_target: ${target} is not a target")
  endif()

  if(TARGET funcie_cli)
    set(funcie $<TARGET_FILE:funcie_cli>)
    set(funcie_dep funcie_cli)
  else()
    find_program(FUNCIE_EXECUTABLE funcie REQUIRED)
    set(funcie ${FUNCIE_EXECUTABLE})
    set(funcie_dep ${FUNCIE_EXECUTABLE})
  endif()

  set(output ${FUNCIE_PKG_OUTPUT})
  if(NOT output)
    set(output ${CMAKE_CURRENT_BINARY_DIR}/${target}.zip)
  endif()
  set(options)
  foreach(lib ${FUNCIE_PKG_LIBRARIES})
    list(APPEND options --library ${lib})
  endforeach()
  if(FUNCIE_PKG_NO_STRIP)
    list(APPEND options --no-strip)
  endif()

  # DEPENDS on the targets: rebuilt when the binary or funcie changes.
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${funcie} package $<TARGET_FILE:${target}> -o ${output} ${options}
    DEPENDS ${target} ${funcie_dep} ${FUNCIE_PKG_LIBRARIES}
    COMMENT "funcie package: ${target} -> ${output}"
    VERBATIM)
  add_custom_target(package-${target} DEPENDS ${output})
endfunction()
