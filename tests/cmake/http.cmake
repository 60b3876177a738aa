# The daemon's HTTP client (core/http.c) and the polling library (plugins/poll) against a real
# HTTP server on loopback (tests/http/server.py, run by /usr/bin/python3) (tests/test_http.c).
sb_add_unit_test(test_http SOURCES test_http.c fake_host.c
  LIBRARIES scalebus_poll sbcore PkgConfig::LIBUV PkgConfig::CURL m)
# The daemon side: a test-only trigger making requests through the real host table.
add_library(http_probe MODULE ${CMAKE_CURRENT_SOURCE_DIR}/daemon/http_probe.c)
set_target_properties(http_probe PROPERTIES PREFIX "" OUTPUT_NAME http_probe
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/http/plugins C_VISIBILITY_PRESET hidden)
target_include_directories(http_probe PRIVATE ${PROJECT_SOURCE_DIR}/plugins/include)
sb_target_warnings(http_probe)
target_compile_definitions(test_http PRIVATE
  SB_HTTP_PROBE_DIR="${CMAKE_CURRENT_BINARY_DIR}/http/plugins")
add_dependencies(test_http http_probe)
