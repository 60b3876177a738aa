# SB_SANITIZE=ON builds everything (daemon, plugins, tests) with ASan and UBSan; any report aborts.
# SB_TSAN=ON builds everything with ThreadSanitizer instead (scripts/test.sh runs test_bus so).
option(SB_TSAN "Build with ThreadSanitizer (not together with SB_SANITIZE)" OFF)
if(SB_SANITIZE AND SB_TSAN)
  message(FATAL_ERROR "SB_SANITIZE and SB_TSAN cannot be combined: use one build directory each")
endif()
if(SB_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
if(SB_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
