# The dashboard (core/dashboard): its history ring and routes in C, and the page in a real
# headless Chromium against `scalebus run` (skipped, exit 77, without chromium, chromium-driver
# and python3-selenium).
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_dashboard_history.c)
  sb_add_unit_test(test_dashboard_history SOURCES test_dashboard_history.c LIBRARIES sbcore)
endif()
add_test(NAME test_dashboard
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_dashboard.sh
                 $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_dashboard PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)
