# test_simulate: `scalebus simulate` end to end (decisions CSV, trace and pipeline errors, the
# scaler model's startup, the SVG chart, a day of one-second readings).
add_test(NAME test_simulate COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_simulate.sh
         $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_simulate PROPERTIES LABELS e2e TIMEOUT 300)
