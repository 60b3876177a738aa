# ABI 2 compatibility and plugin-folder trust (tests/abi/):
# - frozen_v2.so is built against tests/abi/v2/scalebus/plugin.h, a frozen copy of the ABI-2
#   header as it was when ABI 2 came out. Never edit that copy: test_abi checks its SHA-256. A
#   change to plugins/include/scalebus/plugin.h that breaks this plugin breaks the ABI.
# - future_abi.so is built like a plugin of a future, bigger header (descriptor, options rows and
#   option values all grown at their end).
# - test_abi loads both into today's daemon (and the ABI-1 case of tests/plugins/), through
#   pipeline files, and checks that plugins.path folders are held to the loader's trust rules.
# - test_plugins_dir drives `scalebus plugins --plugin-dir` over trusted and untrusted folders.
# Tests that cannot run (a build tree under a sticky /tmp cannot be trusted; giving files to
# another owner needs root) exit 77, which ctest reports as skipped.
set(SB_ABI_PLUGIN_DIR ${CMAKE_CURRENT_BINARY_DIR}/abi/plugins)
set(SB_FROZEN_V2_HEADER ${CMAKE_CURRENT_SOURCE_DIR}/abi/v2/scalebus/plugin.h)
file(SHA256 ${SB_FROZEN_V2_HEADER} SB_FROZEN_V2_SHA256)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${SB_FROZEN_V2_HEADER})

# sb_add_abi_plugin(TARGET NAME SOURCE): ${SB_ABI_PLUGIN_DIR}/NAME/NAME.so, one folder each.
function(sb_add_abi_plugin target name source)
  add_library(${target} MODULE ${source})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME ${name} PREFIX "" SUFFIX ".so"
    LIBRARY_OUTPUT_DIRECTORY $<1:${SB_ABI_PLUGIN_DIR}/${name}> C_VISIBILITY_PRESET hidden)
  if(NOT SB_SANITIZE)
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
  endif()
  sb_target_warnings(${target})
endfunction()

# No include folder: it includes the frozen header by its path relative to the source.
sb_add_abi_plugin(sb_abi_frozen_v2 frozen_v2 ${CMAKE_CURRENT_SOURCE_DIR}/abi/frozen_v2_plugin.c)
sb_add_abi_plugin(sb_abi_future future_abi ${CMAKE_CURRENT_SOURCE_DIR}/abi/future_plugin.c)
target_include_directories(sb_abi_future PRIVATE ${PROJECT_SOURCE_DIR}/plugins/include)
# Maps of objects (SB_OPT_OBJECTS through options_more): a valid plugin and two the loader refuses.
foreach(case 0 1 2)
  sb_add_abi_plugin(sb_abi_nested${case} nested${case} ${CMAKE_CURRENT_SOURCE_DIR}/abi/nested_plugin.c)
  target_include_directories(sb_abi_nested${case} PRIVATE ${PROJECT_SOURCE_DIR}/plugins/include)
  target_compile_definitions(sb_abi_nested${case} PRIVATE NESTED_CASE=${case})
endforeach()

sb_add_unit_test(test_abi SOURCES abi/test_abi.c tmp_tree.c LIBRARIES sbcore)
target_compile_definitions(test_abi PRIVATE SB_ABI_PLUGIN_DIR="${SB_ABI_PLUGIN_DIR}"
  SB_FROZEN_V2_HEADER="${SB_FROZEN_V2_HEADER}" SB_FROZEN_V2_SHA256="${SB_FROZEN_V2_SHA256}")
add_dependencies(test_abi sb_abi_frozen_v2 sb_abi_future sb_abi_nested0 sb_abi_nested1
  sb_abi_nested2 sb_test_plugins)
set_tests_properties(test_abi PROPERTIES SKIP_RETURN_CODE 77)
if(TEST test_loader)
  set_tests_properties(test_loader PROPERTIES SKIP_RETURN_CODE 77)
endif()

if(TARGET scalebus)
  add_test(NAME test_plugins_dir
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/abi/test_plugins_dir.sh $<TARGET_FILE:scalebus>
            ${SB_ABI_PLUGIN_DIR}/frozen_v2/frozen_v2.so ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(test_plugins_dir PROPERTIES LABELS e2e TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()
