# The consumer program, as both CMake projects build it once they have the
# ipc_hpp::ipc_hpp target and its version (ipc_hpp_VERSION_*): included by
# cmake_find/ and cmake_subdir/.
add_executable(consumer ${CMAKE_CURRENT_LIST_DIR}/consumer.cpp)
target_link_libraries(consumer PRIVATE ipc_hpp::ipc_hpp)
target_compile_definitions(consumer PRIVATE
  EXPECTED_VERSION_MAJOR=${ipc_hpp_VERSION_MAJOR}
  EXPECTED_VERSION_MINOR=${ipc_hpp_VERSION_MINOR}
  EXPECTED_VERSION_PATCH=${ipc_hpp_VERSION_PATCH})
target_compile_options(consumer PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror)
