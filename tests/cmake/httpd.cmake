# The HTTP server the admin API and the router share (core/httpd.c): its unit tests over real
# sockets on loopback (test_httpd) and its libFuzzer target (fuzz_httpd).
if(TARGET sb_httpd)
  find_package(Threads REQUIRED)
  sb_add_unit_test(test_httpd SOURCES test_httpd.c LIBRARIES sb_httpd Threads::Threads)

  # fuzz_httpd: arbitrary bytes through a feed connection (clang only: libFuzzer). httpd.c and
  # llhttp are compiled into it with the fuzzer's coverage instrumentation.
  # Run it with tests/fuzz/run.sh BUILD_DIR SECONDS httpd.
  if(SB_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
    add_executable(fuzz_httpd fuzz/fuzz_httpd.c ${PROJECT_SOURCE_DIR}/core/httpd.c
                   ${SB_LLHTTP_SOURCE_DIR}/api.c ${SB_LLHTTP_SOURCE_DIR}/http.c
                   ${SB_LLHTTP_SOURCE_DIR}/llhttp.c)
    set_source_files_properties(${SB_LLHTTP_SOURCE_DIR}/api.c ${SB_LLHTTP_SOURCE_DIR}/http.c
      ${SB_LLHTTP_SOURCE_DIR}/llhttp.c TARGET_DIRECTORY fuzz_httpd PROPERTIES COMPILE_OPTIONS -w)
    target_include_directories(fuzz_httpd PRIVATE ${PROJECT_SOURCE_DIR}/core
      ${PROJECT_SOURCE_DIR}/plugins/include ${SB_LLHTTP_INCLUDE_DIR})
    target_compile_options(fuzz_httpd PRIVATE
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(fuzz_httpd PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_httpd PRIVATE PkgConfig::LIBUV)
    sb_target_warnings(fuzz_httpd)
    # Every seed once: the corpus stays a regression test (new inputs go to the build tree).
    file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_httpd_new)
    add_test(NAME fuzz_httpd_corpus
             COMMAND fuzz_httpd -runs=0 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_httpd_new
                     ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/httpd)
    set_tests_properties(fuzz_httpd_corpus PROPERTIES LABELS fuzz TIMEOUT 120)
  elseif(SB_FUZZ)
    message(STATUS "SB_FUZZ: fuzz_httpd needs clang (CMAKE_C_COMPILER=clang); not built")
  endif()
endif()
