# The HTTP-load triggers (prometheus, haproxy, nginx): their reply parsers against replies
# captured from the real servers (tests/test_httpload_parse.c, fixtures in tests/httpload/), and
# the plugins against real Prometheus, HAProxy and nginx started on loopback
# (tests/test_httpload.sh; skipped, exit 77, when a server is not installed).
if(TARGET sb_prometheus_parse AND TARGET sb_haproxy_parse AND TARGET sb_nginx_parse)
  sb_add_unit_test(test_httpload_parse SOURCES test_httpload_parse.c
    LIBRARIES sb_prometheus_parse sb_haproxy_parse sb_nginx_parse m)
endif()
if(TARGET scalebus AND TARGET plugin_prometheus AND TARGET plugin_haproxy AND TARGET plugin_nginx
   AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_httpload.sh)
  add_test(NAME test_httpload
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_httpload.sh
                   $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_httpload PROPERTIES LABELS e2e TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()
