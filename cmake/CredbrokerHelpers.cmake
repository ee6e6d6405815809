# Warnings live on an INTERFACE target that only our own code links, so generated protobuf/gRPC
# sources stay quiet.
add_library(cb_warnings INTERFACE)
target_compile_options(cb_warnings INTERFACE
  -Wall -Wextra -Werror -Werror=unused-result -Wno-unused-parameter)

# cb_library(NAME name SOURCES ... DEPS ...): target cb_<name>, alias credbroker::<name>.
# Public headers are under the library's include/ folder.
function(cb_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  string(REPLACE "/" "_" alias_name "${ARG_NAME}")
  set(target cb_${alias_name})
  if(ARG_SOURCES)
    add_library(${target} STATIC ${ARG_SOURCES})
    target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE cb_warnings)
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${target} INTERFACE ${ARG_DEPS})
  endif()
  add_library(credbroker::${alias_name} ALIAS ${target})
endfunction()

# cb_test(NAME name SOURCES ... DEPS ... [LABELS ...]): one gtest binary, discovered before run.
function(cb_test)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT CB_BUILD_TESTS)
    return()
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} cb_testing GTest::gmock GTest::gtest_main cb_warnings)
  gtest_discover_tests(${ARG_NAME}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT 120)
endfunction()
