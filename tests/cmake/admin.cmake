# The admin endpoint (core/admin.c): a real `scalebus run` driven with curl, and the unit tests of
# its routing, token check and Prometheus rendering.
add_test(NAME test_admin
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_admin.sh
                 $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_admin PROPERTIES LABELS e2e TIMEOUT 300)
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_admin_render.c)
  sb_add_unit_test(test_admin_render SOURCES test_admin_render.c LIBRARIES sbcore)
endif()
