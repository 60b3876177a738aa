# State that survives a restart (state.dir, core/state.c, plugins/policy/policy_state.c): a real
# `scalebus run` restarted, and the unit tests of the state file and the policy's snapshot.
add_test(NAME test_state
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_state.sh
                 $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_state PROPERTIES LABELS e2e TIMEOUT 300)
sb_add_unit_test(test_state_file SOURCES test_state_file.c LIBRARIES sbcore)
if(TARGET scalebus_policy)
  sb_add_unit_test(test_state_policy SOURCES test_state_policy.c LIBRARIES scalebus_policy)
endif()
