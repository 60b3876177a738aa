# The daemon's HTTP client (core/http.c) and the polling library (plugins/poll) against a real
# HTTP server on loopback (tests/http/server.py, run by /usr/bin/python3) (tests/test_http.c).
sb_add_unit_test(test_http SOURCES test_http.c fake_host.c
  LIBRARIES scalebus_poll sbcore PkgConfig::LIBUV PkgConfig::CURL m)
