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
# The label `tsan` puts it in the tsan preset (threads of our own; no gRPC server inside).
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
  if(CB_TSAN)
    # Happens-before edges for Debian's uninstrumented Abseil (libs/testing/tsan).
    target_link_libraries(${ARG_NAME} PRIVATE cb_tsan_annotations)
    if("tsan" IN_LIST ARG_LABELS)
      add_dependencies(tsan_tests ${ARG_NAME})
    endif()
  endif()
  # gtest_discover_tests passes its PROPERTIES on as a flat list, so only one label survives
  # there; `tsan` is given to every test of the folder instead (one test target per folder).
  set(labels ${ARG_LABELS})
  if("tsan" IN_LIST labels)
    list(REMOVE_ITEM labels tsan)
    set_property(DIRECTORY APPEND PROPERTY LABELS tsan)
  endif()
  list(LENGTH labels label_count)
  if(NOT label_count EQUAL 1)
    message(FATAL_ERROR "cb_test(${ARG_NAME}): one label besides tsan, got ${labels}")
  endif()
  gtest_discover_tests(${ARG_NAME}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS "${labels}" TIMEOUT 120)
endfunction()
