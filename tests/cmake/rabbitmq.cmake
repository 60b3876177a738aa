# The rabbitmq trigger: its reply parser and option checks (test_rabbitmq_parse, unit: also run
# under valgrind), and the plugin against a real rabbitmq-server over both protocols
# (test_rabbitmq.sh, e2e).
if(TARGET sb_rabbitmq_parse)
  sb_add_unit_test(test_rabbitmq_parse SOURCES test_rabbitmq_parse.c fake_host.c
    LIBRARIES sb_rabbitmq_parse sbcore PkgConfig::CJSON)
  if(TARGET plugin_rabbitmq)
    # Its option tests load rabbitmq.so: built first, so they never pass without running.
    add_dependencies(test_rabbitmq_parse plugin_rabbitmq)
  endif()
endif()
if(TARGET plugin_rabbitmq)
  add_test(NAME test_rabbitmq COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_rabbitmq.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_rabbitmq PROPERTIES LABELS e2e TIMEOUT 600)
endif()
