# The redis trigger: its URL parser, reply reader and option checks (test_redis_url, unit: also
# run under valgrind), and the plugin against a real redis-server (test_redis.sh, e2e).
if(TARGET sb_redis_parse)
  sb_add_unit_test(test_redis_url SOURCES test_redis_url.c fake_host.c
    LIBRARIES sb_redis_parse sbcore)
  if(TARGET plugin_redis)
    # Its option tests load redis.so: built first, so they never pass without running.
    add_dependencies(test_redis_url plugin_redis)
  endif()
endif()
if(TARGET plugin_redis AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_redis.sh)
  add_test(NAME test_redis COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_redis.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_redis PROPERTIES LABELS e2e TIMEOUT 600)
endif()
