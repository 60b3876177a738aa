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
