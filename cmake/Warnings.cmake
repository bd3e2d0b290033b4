# Warnings are errors everywhere in our own code.
function(funcie_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror -Wshadow
                                           -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                                           -Woverloaded-virtual
                                           # GCC 12 misreads coroutine frames (GCC bug 105574)
                                           -Wno-mismatched-new-delete)
endfunction()
