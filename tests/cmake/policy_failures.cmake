# A policy's fail_after and fallback: the unit tests live in test_policy (tests/test_policy.c),
# which also loads every policy plugin; the live check runs `scalebus run` with the probe trigger
# (tests/daemon/probe.c, feed_file) in front of two `target` policies and `process` scalers.
if(TARGET test_policy)
  foreach(plugin plugin_expression plugin_waiter plugin_combine)
    if(TARGET ${plugin})
      add_dependencies(test_policy ${plugin})
    endif()
  endforeach()
endif()
add_test(NAME test_policy_failures
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_policy_failures.sh
                 $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR} ${SB_PROBE_PLUGIN_DIR})
set_tests_properties(test_policy_failures PROPERTIES LABELS e2e TIMEOUT 300)
