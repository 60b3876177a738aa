# Supervision of the daemon's child processes (core/supervise.c, the process scaler).
#
# test_process also drives the process plugin through the shared fake host, and counts the
# waitpid()/waitid() calls one child's exit costs anywhere in the process: it wraps them, and
# exports them so the plugin's calls (a shared object's) reach the wrappers too.
if(TARGET test_process)
  target_sources(test_process PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fake_host.c)
  set_target_properties(test_process PROPERTIES ENABLE_EXPORTS ON)
  target_link_libraries(test_process PRIVATE ${CMAKE_DL_LIBS})
endif()

# End to end, against the built binary: no process of an instance outlives the daemon (SIGKILL,
# the fast exit on a second signal, process-group fallback, setsid escapees under cgroup v2).
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_supervision.sh)
  add_test(NAME test_supervision COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_supervision.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_supervision PROPERTIES LABELS e2e TIMEOUT 300)
endif()

# process.so as a test build (SB_PROCESS_TEST_KNOBS): its back-off constants come from
# SB_TEST_BACKOFF_FIRST_MS, _MAX_MS and _RESET_MS when the environment sets them, so test_process
# reaches the 60 s cap and the reset after a long run without waiting for them. It lives in a
# folder of its own and is never installed; every other test runs the real plugin.
if(TARGET test_process AND TARGET plugin_process)
  set(SB_PROCESS_TEST_PLUGIN_DIR ${CMAKE_CURRENT_BINARY_DIR}/process/plugins)
  add_library(process_test_knobs MODULE ${PROJECT_SOURCE_DIR}/scalers/process/process.c)
  set_target_properties(process_test_knobs PROPERTIES OUTPUT_NAME process PREFIX "" SUFFIX ".so"
    LIBRARY_OUTPUT_DIRECTORY $<1:${SB_PROCESS_TEST_PLUGIN_DIR}> C_VISIBILITY_PRESET hidden)
  target_compile_definitions(process_test_knobs PRIVATE SB_PROCESS_TEST_KNOBS)
  target_include_directories(process_test_knobs PRIVATE ${PROJECT_SOURCE_DIR}/plugins/include)
  target_link_libraries(process_test_knobs PRIVATE PkgConfig::LIBUV PkgConfig::CJSON scalebus_scaler m)
  sb_target_warnings(process_test_knobs)
  target_compile_definitions(test_process PRIVATE
    SB_PROCESS_TEST_PLUGIN_DIR="${SB_PROCESS_TEST_PLUGIN_DIR}")
  add_dependencies(test_process process_test_knobs)
endif()
