# The docker scaler: its parser and option errors (unit; run under valgrind by scripts/test.sh),
# and the scaler end to end against a real dockerd and a real `podman system service`, each
# started by the script on a private socket and data root (tests/test_docker.sh; it exits 77,
# skipped, when an engine cannot run on the machine). The e2e test reads the instance lists the
# scalers publish through the test-only trigger instances_recorder (the source test_marathon
# uses, tests/marathon/instances_recorder.c), built here into a folder of its own.
if(TARGET sb_docker_parse)
  sb_add_unit_test(test_docker_parse SOURCES test_docker_parse.c fake_host.c
    LIBRARIES sb_docker_parse sbcore PkgConfig::LIBUV PkgConfig::CJSON)
  if(TARGET plugin_docker)
    # Its option tests load docker.so: built first, so they never pass without running.
    add_dependencies(test_docker_parse plugin_docker)
  endif()
endif()
if(TARGET scalebus AND TARGET plugin_docker AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_docker.sh
   AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/marathon/instances_recorder.c)
  set(sb_docker_recorder_dir ${CMAKE_BINARY_DIR}/tests/docker-plugins)
  add_library(sb_docker_instances_recorder MODULE marathon/instances_recorder.c)
  set_target_properties(sb_docker_instances_recorder PROPERTIES
    OUTPUT_NAME instances_recorder PREFIX "" SUFFIX ".so" C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY $<1:${sb_docker_recorder_dir}>)
  target_include_directories(sb_docker_instances_recorder PRIVATE
    ${PROJECT_SOURCE_DIR}/plugins/include)
  target_link_libraries(sb_docker_instances_recorder PRIVATE PkgConfig::CJSON)
  sb_target_warnings(sb_docker_instances_recorder)
  if(TARGET test_docker_parse)
    add_dependencies(test_docker_parse sb_docker_instances_recorder)
  endif()
  add_test(NAME test_docker COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_docker.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR} ${sb_docker_recorder_dir})
  set_tests_properties(test_docker PROPERTIES LABELS e2e TIMEOUT 400 SKIP_RETURN_CODE 77)
endif()
