# What `scalebus check` tells an operator (tests/test_check.sh, against the built binary and the
# built-in plugins) and the pipeline-file benchmark.
if(TARGET scalebus)
  add_test(NAME test_check COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_check.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(test_check PROPERTIES LABELS e2e TIMEOUT 120)
endif()

# bench_config: parse and validate a 30,000-component file; prints figures, never fails on them.
if(SB_BUILD_BENCH)
  add_executable(bench_config bench/bench_config.c)
  target_link_libraries(bench_config PRIVATE sbcore)
  sb_target_warnings(bench_config)
endif()
