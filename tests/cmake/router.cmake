# The router trigger: its pure parts (service selection, header rewriting, balancing) with Check
# (test_router_core), and the proxy end to end in a live daemon with process-scaled backends
# (tests/test_router.sh, tests/router/app.py).
if(TARGET sb_router_core)
  sb_add_unit_test(test_router_core SOURCES test_router_core.c LIBRARIES sb_router_core)
endif()
if(TARGET scalebus AND TARGET plugin_router AND TARGET plugin_process AND TARGET plugin_waiter)
  add_test(NAME test_router
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_router.sh
                   $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_router PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()

# The router's handling of remote bytes (requests, and answers through llhttp) under arbitrary
# input: replayed as a unit test (corpus + 20000 generated inputs, under valgrind in CI), and as
# a libFuzzer target with SB_FUZZ and clang (fuzz_router; run it with
# `fuzz_router -max_total_time=60 NEWDIR tests/router/fuzz-corpus`).
if(TARGET sb_router_core AND TARGET sb_llhttp)
  sb_add_unit_test(test_router_fuzz SOURCES test_router_fuzz.c
    LIBRARIES sb_router_core sb_llhttp)
  if(SB_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
    add_executable(fuzz_router test_router_fuzz.c ${PROJECT_SOURCE_DIR}/triggers/router/router_core.c
                   ${SB_LLHTTP_SOURCE_DIR}/api.c ${SB_LLHTTP_SOURCE_DIR}/http.c
                   ${SB_LLHTTP_SOURCE_DIR}/llhttp.c)
    set_source_files_properties(${SB_LLHTTP_SOURCE_DIR}/api.c ${SB_LLHTTP_SOURCE_DIR}/http.c
      ${SB_LLHTTP_SOURCE_DIR}/llhttp.c TARGET_DIRECTORY fuzz_router PROPERTIES COMPILE_OPTIONS -w)
    target_include_directories(fuzz_router PRIVATE ${PROJECT_SOURCE_DIR}/triggers/router
      ${SB_LLHTTP_INCLUDE_DIR})
    target_compile_definitions(fuzz_router PRIVATE SB_LIBFUZZER)
    target_compile_options(fuzz_router PRIVATE
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(fuzz_router PRIVATE -fsanitize=fuzzer,address,undefined)
    sb_target_warnings(fuzz_router)
    file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_router_new)
    add_test(NAME fuzz_router_corpus
             COMMAND fuzz_router -runs=0 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_router_new
                     ${CMAKE_CURRENT_SOURCE_DIR}/router/fuzz-corpus)
    set_tests_properties(fuzz_router_corpus PROPERTIES LABELS fuzz TIMEOUT 120)
  endif()
endif()
