# The ec2 scaler: its reply parser and option errors (unit; run under valgrind by scripts/test.sh),
# and the scaler end to end against the EC2 and Auto Scaling double and the metadata double
# (tests/aws/ec2_double.py, tests/aws/imds_double.py; no AWS is reached).
if(TARGET sb_ec2_parse AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_ec2_parse.c)
  sb_add_unit_test(test_ec2_parse SOURCES test_ec2_parse.c fake_host.c
    LIBRARIES sb_ec2_parse sbcore PkgConfig::LIBUV)
  if(TARGET plugin_ec2)
    # Its option tests load ec2.so: built first, so they never pass without running.
    add_dependencies(test_ec2_parse plugin_ec2)
  endif()
endif()
if(TARGET scalebus AND TARGET plugin_ec2 AND TARGET plugin_http_json AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_ec2.sh)
  add_test(NAME test_ec2 COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_ec2.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_ec2 PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
