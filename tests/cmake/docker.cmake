# The docker scaler: its parser and option errors (unit; run under valgrind by scripts/test.sh),
# and the scaler end to end against a real dockerd and a real `podman system service`, each
# started by the script on a private socket and data root (tests/test_docker.sh; it exits 77,
# skipped, when an engine cannot run on the machine).
if(TARGET sb_docker_parse)
  sb_add_unit_test(test_docker_parse SOURCES test_docker_parse.c fake_host.c
    LIBRARIES sb_docker_parse sbcore PkgConfig::LIBUV PkgConfig::CJSON)
  if(TARGET plugin_docker)
    # Its option tests load docker.so: built first, so they never pass without running.
    add_dependencies(test_docker_parse plugin_docker)
  endif()
endif()
if(TARGET scalebus AND TARGET plugin_docker AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_docker.sh)
  add_test(NAME test_docker COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_docker.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_docker PROPERTIES LABELS e2e TIMEOUT 400 SKIP_RETURN_CODE 77)
endif()
