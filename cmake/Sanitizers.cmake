# SB_SANITIZE=ON builds everything (daemon, plugins, tests) with ASan and UBSan; any report aborts.
if(SB_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
