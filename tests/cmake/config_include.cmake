# include: and extend: in pipeline files. test_config_include (unit): real files in a temporary
# folder in the build tree, both phases against fake plugin tables. test_include (e2e): `scalebus
# check` on a conf.d layout, and a running daemon that picks up a new conf.d file on SIGHUP and
# refuses a broken one at the fragment's file:line:col while its pipelines keep running.
sb_add_unit_test(test_config_include SOURCES test_config_include.c tmp_tree.c LIBRARIES sbcore)

if(TARGET scalebus AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_include.sh)
  add_test(NAME test_include COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_include.sh
           $<TARGET_FILE:scalebus> ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(test_include PROPERTIES LABELS e2e TIMEOUT 120)
endif()
