# The kitchen (tests/kitchen/kitchen.c): the project's own test web app on sb_httpd, the backend
# the router's tests and tests/bench/bench_router.sh put behind a proxy. Built beside the tests
# (build/tests/kitchen), never installed. test_kitchen (e2e) shows each of its options with curl.
if(TARGET sb_httpd)
  add_executable(kitchen kitchen/kitchen.c)
  target_link_libraries(kitchen PRIVATE sb_httpd m)
  sb_target_warnings(kitchen)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_kitchen.sh)
    add_test(NAME test_kitchen
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_kitchen.sh $<TARGET_FILE:kitchen>)
    set_tests_properties(test_kitchen PROPERTIES LABELS e2e TIMEOUT 120 SKIP_RETURN_CODE 77)
  endif()
endif()
