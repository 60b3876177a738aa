# fuzz_replies: every parser of what a remote sends the triggers (their sources compiled in with
# the fuzzer's instrumentation). clang only: libFuzzer. Run it with
# tests/fuzz/run.sh BUILD_DIR SECONDS replies.
if(SB_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(R ${PROJECT_SOURCE_DIR}/triggers)
  add_executable(fuzz_replies fuzz/fuzz_replies.c
    ${R}/prometheus/prometheus_parse.c ${R}/haproxy/haproxy_parse.c ${R}/nginx/nginx_parse.c
    ${R}/rabbitmq/rabbitmq_parse.c ${R}/http_json/http_json_parse.c ${R}/sqs/sqs_parse.c
    ${PROJECT_SOURCE_DIR}/plugins/aws/aws_parse.c ${R}/redis/redis_url.c ${R}/redis/redis_reply.c
    ${PROJECT_SOURCE_DIR}/scalers/marathon/marathon_api.c ${PROJECT_SOURCE_DIR}/scalers/ec2/ec2_parse.c
    ${PROJECT_SOURCE_DIR}/scalers/docker/docker_api.c)
  target_include_directories(fuzz_replies PRIVATE ${PROJECT_SOURCE_DIR}/plugins/include
    ${R}/prometheus ${R}/haproxy ${R}/nginx ${R}/rabbitmq ${R}/http_json ${R}/sqs ${R}/redis
    ${PROJECT_SOURCE_DIR}/plugins/aws ${PROJECT_SOURCE_DIR}/scalers/marathon
    ${PROJECT_SOURCE_DIR}/scalers/ec2 ${PROJECT_SOURCE_DIR}/scalers/docker)
  target_compile_options(fuzz_replies PRIVATE
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(fuzz_replies PRIVATE -fsanitize=fuzzer,address,undefined)
  pkg_check_modules(HIREDIS_FUZZ REQUIRED IMPORTED_TARGET hiredis)
  pkg_check_modules(LIBXML2_FUZZ REQUIRED IMPORTED_TARGET libxml-2.0)
  target_link_libraries(fuzz_replies PRIVATE PkgConfig::CJSON PkgConfig::HIREDIS_FUZZ
    PkgConfig::LIBXML2_FUZZ m)
  sb_target_warnings(fuzz_replies)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_replies_new)
  add_test(NAME fuzz_replies_corpus
           COMMAND fuzz_replies -runs=0 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_replies_new
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/replies)
  set_tests_properties(fuzz_replies_corpus PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
