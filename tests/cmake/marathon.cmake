# The marathon scaler: its parser and option errors (unit; run under valgrind by scripts/test.sh),
# and the scaler end to end against tests/marathon/marathon_double.py, a double of Marathon's
# REST API (tests/test_marathon.sh). The e2e test sees the instances event through a test-only
# trigger, instances_recorder (tests/marathon/instances_recorder.c), loaded with --plugin-dir.
if(TARGET sb_marathon_parse)
  sb_add_unit_test(test_marathon_parse SOURCES test_marathon_parse.c fake_host.c
    LIBRARIES sb_marathon_parse sbcore PkgConfig::LIBUV PkgConfig::CJSON)
  if(TARGET plugin_marathon)
    # Its option tests load marathon.so: built first, so they never pass without running.
    add_dependencies(test_marathon_parse plugin_marathon)
  endif()
endif()
if(TARGET scalebus AND TARGET plugin_marathon AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_marathon.sh
   AND COMMAND sb_add_test_plugin)
  sb_add_test_plugin(marathon instances_recorder SOURCES marathon/instances_recorder.c)
  target_link_libraries(sb_test_plugin_marathon_instances_recorder PRIVATE PkgConfig::CJSON)
  add_test(NAME test_marathon COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_marathon.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/tests/plugins/marathon)
  set_tests_properties(test_marathon PROPERTIES LABELS e2e TIMEOUT 300)
endif()
