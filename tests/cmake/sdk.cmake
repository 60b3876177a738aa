# The SDK for plugin authors and the packaging (tests/test_sdk.sh): `cmake --install` of this build
# tree into a temporary prefix, examples/plugin-hello built from it with pkg-config and with
# find_package(ScaleBus) and run in the installed daemon, plugins on the SDK libraries, sd_notify,
# the systemd unit (systemd-analyze verify) and the man page. Exits 77 (skipped) without cmake,
# make, pkg-config or python3.
if(TARGET scalebus AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_sdk.sh)
  add_test(NAME test_sdk COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_sdk.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR})
  set_tests_properties(test_sdk PROPERTIES LABELS e2e TIMEOUT 240 SKIP_RETURN_CODE 77)
endif()
