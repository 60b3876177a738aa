# The AWS library, the sqs and http_json triggers: unit tests (Check; run under valgrind by
# scripts/test.sh) and the end-to-end runs against the SQS and metadata-service doubles
# (tests/aws/*.py) and a local HTTP server.
if(TARGET scalebus_aws AND TARGET sb_sqs_parse)
  sb_add_unit_test(test_aws SOURCES test_aws.c fake_host.c
    LIBRARIES scalebus_aws sb_sqs_parse sbcore PkgConfig::LIBUV)
  target_include_directories(test_aws PRIVATE ${PROJECT_SOURCE_DIR}/plugins/aws)
  # Its option tests load sqs.so: built first, so they never pass without running.
  add_dependencies(test_aws plugin_sqs)
endif()
if(TARGET sb_http_json_parse)
  sb_add_unit_test(test_http_json_parse SOURCES test_http_json_parse.c fake_host.c
    LIBRARIES sb_http_json_parse sbcore PkgConfig::LIBUV)
  add_dependencies(test_http_json_parse plugin_http_json)
endif()
if(TARGET scalebus AND TARGET plugin_sqs)
  add_test(NAME test_sqs COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_sqs.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_sqs PROPERTIES LABELS e2e TIMEOUT 300)
endif()
if(TARGET scalebus AND TARGET plugin_http_json)
  add_test(NAME test_http_json COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_http_json.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_http_json PROPERTIES LABELS e2e TIMEOUT 300)
endif()
