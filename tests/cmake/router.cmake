# The router trigger: its pure parts (service selection, header rewriting, balancing) with Check
# (test_router_core), and the proxy end to end in a live daemon with process-scaled backends
# (tests/test_router.sh, tests/router/app.py).
if(TARGET sb_router_core)
  sb_add_unit_test(test_router_core SOURCES test_router_core.c LIBRARIES sb_router_core)
endif()
if(TARGET scalebus AND TARGET plugin_router AND TARGET plugin_process AND TARGET plugin_waiter)
  add_test(NAME test_router
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_router.sh
                   $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_router PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
