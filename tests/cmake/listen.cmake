# host->listen (host version 4): listening sockets the daemon keeps across reloads. test_listen
# runs a daemon with the test plugin tests/plugins/listen_probe.c (built into tests/plugins/listen).
sb_add_unit_test(test_listen SOURCES test_listen.c tmp_tree.c LIBRARIES sbcore)
add_dependencies(test_listen sb_test_plugins)
set_tests_properties(test_listen PROPERTIES SKIP_RETURN_CODE 77)
