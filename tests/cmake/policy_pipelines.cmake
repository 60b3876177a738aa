# Every policy connector in a simulated and a live pipeline (tests/test_policy_pipelines.sh).
add_test(NAME test_policy_pipelines
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_policy_pipelines.sh
                 $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_policy_pipelines PROPERTIES LABELS e2e TIMEOUT 300)
