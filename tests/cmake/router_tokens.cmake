# The router's tokens (services registered at run time): the fragment a request becomes, with
# Check (test_router_tokens), and end to end in a live daemon: POST/GET/DELETE /_scalebus/token,
# the configuration check, a restart, an update and the include: folder (tests/test_tokens.sh).
if(TARGET sb_httpd AND TARGET sb_llhttp)
  sb_add_unit_test(test_router_tokens SOURCES test_router_tokens.c
    ${PROJECT_SOURCE_DIR}/triggers/router/router_tokens.c
    LIBRARIES sbcore sb_httpd sb_llhttp PkgConfig::CJSON PkgConfig::LIBUV)
  target_include_directories(test_router_tokens PRIVATE ${PROJECT_SOURCE_DIR}/triggers/router
    ${PROJECT_SOURCE_DIR}/core)
endif()
if(TARGET scalebus AND TARGET plugin_router AND TARGET plugin_process AND TARGET plugin_waiter)
  add_test(NAME test_tokens
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_tokens.sh
                   $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_tokens PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
