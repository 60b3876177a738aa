# The expression connector: the language's unit tests (test_expression, which also drives
# expression.so against a fake host when the plugin is built) and its libFuzzer target.
if(TARGET sb_expr_core)
  sb_add_unit_test(test_expression SOURCES test_expression.c fake_host.c
    LIBRARIES sb_expr_core sbcore PkgConfig::CJSON)
  if(TARGET plugin_expression)
    add_dependencies(test_expression plugin_expression)
  endif()

  # fuzz_expression: parse and evaluate arbitrary bytes (clang only: libFuzzer). expr.c is compiled
  # into it with the fuzzer's coverage instrumentation rather than linked from sb_expr_core.
  # Run it with tests/fuzz/run.sh BUILD_DIR SECONDS.
  if(SB_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
    add_executable(fuzz_expression fuzz/fuzz_expression.c
                   ${PROJECT_SOURCE_DIR}/connectors/expression/expr.c)
    target_include_directories(fuzz_expression PRIVATE
      ${PROJECT_SOURCE_DIR}/connectors/expression ${PROJECT_SOURCE_DIR}/plugins/include)
    target_compile_options(fuzz_expression PRIVATE
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(fuzz_expression PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_expression PRIVATE PkgConfig::CJSON m)
    sb_target_warnings(fuzz_expression)
    # Every seed once (a few milliseconds): the corpus stays a regression test.
    # (new inputs would go to the first folder, in the build tree, never into the kept corpus)
    file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_expression_new)
    add_test(NAME fuzz_expression_corpus
             COMMAND fuzz_expression -runs=0 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_expression_new
                     ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/expression)
    set_tests_properties(fuzz_expression_corpus PROPERTIES LABELS fuzz TIMEOUT 120)
  elseif(SB_FUZZ)
    message(STATUS "SB_FUZZ: fuzz_expression needs clang (CMAKE_C_COMPILER=clang); not built")
  endif()
endif()

# fuzz_config: pipeline files (core/config.c compiled in with the fuzzer's instrumentation).
if(SB_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  # The config stages and the helpers they share, compiled with the fuzzer's instrumentation.
  set(SB_CONFIG_SOURCES)
  foreach(f config.c arena.c config_check.c config_graph.c config_options.c config_scalar.c
            config_tree.c strmap.c textbuf.c)
    list(APPEND SB_CONFIG_SOURCES ${PROJECT_SOURCE_DIR}/core/${f})
  endforeach()
  add_executable(fuzz_config fuzz/fuzz_config.c ${SB_CONFIG_SOURCES})
  target_include_directories(fuzz_config PRIVATE
    ${PROJECT_SOURCE_DIR}/core ${PROJECT_SOURCE_DIR}/plugins/include)
  target_compile_options(fuzz_config PRIVATE
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(fuzz_config PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_config PRIVATE PkgConfig::YAML m)
  sb_target_warnings(fuzz_config)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_config_new)
  add_test(NAME fuzz_config_corpus
           COMMAND fuzz_config -runs=0 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_config_new
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/config)
  set_tests_properties(fuzz_config_corpus PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
