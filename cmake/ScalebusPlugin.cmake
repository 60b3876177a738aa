# scalebus_add_plugin(NAME SOURCES src...) builds one plugin as ${SB_PLUGIN_BUILD_DIR}/NAME.so, a
# MODULE that sees only the public SDK header and exports only sb_plugin_entry. Every built-in
# plugin uses this function; an out-of-tree plugin needs only the installed header.
function(scalebus_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBRARIES" ${ARGN})
  add_library(plugin_${name} MODULE ${P_SOURCES})
  set_target_properties(plugin_${name} PROPERTIES
    OUTPUT_NAME ${name}
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${SB_PLUGIN_BUILD_DIR}
    C_VISIBILITY_PRESET hidden)
  target_include_directories(plugin_${name} PRIVATE ${PROJECT_SOURCE_DIR}/plugins/include)
  target_link_libraries(plugin_${name} PRIVATE ${P_LIBRARIES})
  # A plugin must not need symbols from the daemon binary: fail the link if it does.
  # (Not under the sanitizers: their runtime lives in the executable.)
  if(NOT SB_SANITIZE)
    target_link_options(plugin_${name} PRIVATE -Wl,--no-undefined)
  endif()
  sb_target_warnings(plugin_${name})
  install(TARGETS plugin_${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/scalebus/plugins)
endfunction()
