# What `scalebus check` tells an operator (tests/test_check.sh, against the built binary and the
# built-in plugins), the pipeline-file benchmark, and the config stages in the fuzzer.
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

# fuzz_config (tests/cmake/expression.cmake) compiles core/config.c into the fuzzer; the stages
# config.c calls live in files of their own now, and the helpers they share. They are added
# once every fragment has run, so this does not depend on the fragments' order.
function(sb_config_fuzz_sources)
  if(NOT TARGET fuzz_config)
    return()
  endif()
  get_target_property(have fuzz_config SOURCES)
  foreach(f arena.c config_check.c config_graph.c config_options.c config_scalar.c
            config_tree.c strmap.c textbuf.c)
    set(path ${PROJECT_SOURCE_DIR}/core/${f})
    list(FIND have ${path} at)
    if(at EQUAL -1)
      target_sources(fuzz_config PRIVATE ${path})
    endif()
  endforeach()
endfunction()
cmake_language(DEFER CALL sb_config_fuzz_sources)
