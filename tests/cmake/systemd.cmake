# The systemd scaler: its names, states and properties (test_systemd_units, unit: also run under
# valgrind), and the plugin against a real systemd booted in systemd-nspawn (test_systemd.sh, e2e).
if(TARGET sb_systemd_units)
  sb_add_unit_test(test_systemd_units SOURCES test_systemd_units.c LIBRARIES sb_systemd_units)
endif()
if(TARGET plugin_systemd AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_systemd.sh)
  add_test(NAME test_systemd COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_systemd.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_systemd PROPERTIES LABELS e2e TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()
