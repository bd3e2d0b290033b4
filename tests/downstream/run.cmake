# ctest downstream: installs this build of funcie into a fresh prefix, then configures and
# builds tests/downstream (a Lambda author's project) against it, packages its run_handler
# function, and checks what a user would see: it links no TLS or crypto library (OpenSSL,
# mbedTLS), its zip carries none, and it runs. cmake -DBUILD=<funcie build dir> -DSOURCE=<tests/downstream> -DWORK=<scratch> -P run.cmake
foreach(var BUILD SOURCE WORK)
  if(NOT ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is missing")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK})
run(${CMAKE_COMMAND} --install ${BUILD} --prefix ${WORK}/prefix)
run(${CMAKE_COMMAND} -S ${SOURCE} -B ${WORK}/build -G Ninja -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${WORK}/prefix)
run(${CMAKE_COMMAND} --build ${WORK}/build --target all package-downstream_hello)

set(hello ${WORK}/build/downstream_hello)
run(ldd ${hello})
if(out MATCHES "libssl|libcrypto|libmbed")
  message(FATAL_ERROR "a run_handler function links a TLS or crypto library:\n${out}")
endif()
run(${CMAKE_COMMAND} -E tar tf ${WORK}/build/downstream_hello.zip)
if(NOT out MATCHES "bootstrap" OR out MATCHES "libssl|libcrypto|libmbed")
  message(FATAL_ERROR "downstream_hello.zip is not a function zip without a TLS or crypto library:\n${out}")
endif()

# Outside Lambda, run_handler returns at once and says why.
execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=AWS_LAMBDA_RUNTIME_API ${hello}
                RESULT_VARIABLE rc ERROR_VARIABLE err TIMEOUT 20)
if(NOT rc EQUAL 0 OR NOT err MATCHES "AWS_LAMBDA_RUNTIME_API")
  message(FATAL_ERROR "downstream_hello outside Lambda: exit ${rc}, stderr: ${err}")
endif()
message(STATUS "downstream: built, packaged and ran against ${WORK}/prefix")
