# Planted secrets never leave the daemon (logs text and JSON, --dry-run, check, describe, admin).
if(TARGET scalebus)
  add_test(NAME test_secrets COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_secrets.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_secrets PROPERTIES LABELS e2e TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()
