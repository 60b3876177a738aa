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
if(TARGET scalebus AND TARGET plugin_marathon AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_marathon.sh)
  # Built as a real plugin would be (only sb_plugin_entry exported), in a folder of its own.
  set(sb_marathon_recorder_dir ${CMAKE_BINARY_DIR}/tests/marathon-plugins)
  add_library(sb_marathon_instances_recorder MODULE marathon/instances_recorder.c)
  set_target_properties(sb_marathon_instances_recorder PROPERTIES
    OUTPUT_NAME instances_recorder PREFIX "" SUFFIX ".so" C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY $<1:${sb_marathon_recorder_dir}>)
  target_include_directories(sb_marathon_instances_recorder PRIVATE
    ${PROJECT_SOURCE_DIR}/plugins/include)
  target_link_libraries(sb_marathon_instances_recorder PRIVATE PkgConfig::CJSON)
  sb_target_warnings(sb_marathon_instances_recorder)
  # test_marathon_parse is built by every unit-test build: the recorder comes along.
  add_dependencies(test_marathon_parse sb_marathon_instances_recorder)
  add_test(NAME test_marathon COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_marathon.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR} ${sb_marathon_recorder_dir})
  set_tests_properties(test_marathon PROPERTIES LABELS e2e TIMEOUT 300)
endif()
