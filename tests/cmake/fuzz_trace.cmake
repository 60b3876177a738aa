# fuzz_trace: the trace reader of `scalebus simulate` (core/simulate.c compiled in with the
# fuzzer's instrumentation; the rest of the core linked as it is). clang only: libFuzzer.
# Run it with tests/fuzz/run.sh BUILD_DIR SECONDS trace.
if(SB_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  add_executable(fuzz_trace fuzz/fuzz_trace.c ${PROJECT_SOURCE_DIR}/core/simulate.c)
  target_include_directories(fuzz_trace PRIVATE
    ${PROJECT_SOURCE_DIR}/core ${PROJECT_SOURCE_DIR}/plugins/include)
  target_compile_options(fuzz_trace PRIVATE
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(fuzz_trace PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_trace PRIVATE sbcore m)
  sb_target_warnings(fuzz_trace)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_trace_new)
  add_test(NAME fuzz_trace_corpus
           COMMAND fuzz_trace -runs=0 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_trace_new
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/trace)
  set_tests_properties(fuzz_trace_corpus PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
