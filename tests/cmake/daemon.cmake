# test_daemon: the daemon's wiring (match, fan-in/out, run-now, clamping, reload, stop) and the
# host functions no built-in plugin calls (subscribe, payload_retain/release, bounds), observed
# through two probe plugins built only for it.
set(SB_PROBE_PLUGIN_DIR ${CMAKE_CURRENT_BINARY_DIR}/daemon/plugins)
foreach(kind trigger scaler)
  string(TOUPPER ${kind} KIND)
  add_library(probe_${kind} MODULE ${CMAKE_CURRENT_SOURCE_DIR}/daemon/probe.c)
  set_target_properties(probe_${kind} PROPERTIES PREFIX "" OUTPUT_NAME probe_${kind}
    LIBRARY_OUTPUT_DIRECTORY ${SB_PROBE_PLUGIN_DIR} C_VISIBILITY_PRESET hidden)
  if(${kind} STREQUAL trigger)
    target_compile_definitions(probe_${kind} PRIVATE PROBE_TRIGGER)
  endif()
  target_include_directories(probe_${kind} PRIVATE ${PROJECT_SOURCE_DIR}/plugins/include)
  find_package(Threads REQUIRED)
  target_link_libraries(probe_${kind} PRIVATE Threads::Threads PkgConfig::CJSON)
  sb_target_warnings(probe_${kind})
endforeach()
sb_add_unit_test(test_daemon SOURCES test_daemon.c LIBRARIES sbcore PkgConfig::CJSON)
target_compile_definitions(test_daemon PRIVATE SB_PROBE_PLUGIN_DIR="${SB_PROBE_PLUGIN_DIR}")
add_dependencies(test_daemon probe_trigger probe_scaler plugin_direct plugin_target)

# The real binary's lifecycle: failed start, signals during the first load, in-place bounds.
add_test(NAME test_lifecycle COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_lifecycle.sh
         $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR} ${SB_PROBE_PLUGIN_DIR})
set_tests_properties(test_lifecycle PROPERTIES LABELS e2e TIMEOUT 300)
