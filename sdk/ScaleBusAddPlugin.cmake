# scalebus_add_plugin(NAME SOURCES src... [LIBRARIES lib...] [DESTINATION dir] [NO_INSTALL])
#
# Builds the plugin NAME.so (a MODULE: no "lib" prefix, position-independent, hidden visibility so
# only sb_plugin_entry is exported) against the installed SDK, as target NAME, and installs it
# into the installed daemon's plugin folder (ScaleBus_PLUGIN_DIR; the cache variable
# SCALEBUS_PLUGIN_INSTALL_DIR or DESTINATION choose another). LIBRARIES are linked privately, e.g.
# ScaleBus::policy. The link fails when the plugin needs a symbol the daemon would have to
# provide: a plugin calls the daemon only through the sb_host table.
set(SCALEBUS_PLUGIN_INSTALL_DIR "${ScaleBus_PLUGIN_DIR}" CACHE PATH
    "Where scalebus_add_plugin() installs plugins (default: the installed daemon's plugin folder)")

function(scalebus_add_plugin name)
  cmake_parse_arguments(P "NO_INSTALL" "DESTINATION" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT P_SOURCES)
    message(FATAL_ERROR "scalebus_add_plugin(${name}): no SOURCES")
  endif()
  add_library(${name} MODULE ${P_SOURCES})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${name} PRIVATE ScaleBus::plugin ${P_LIBRARIES})
  # Not when the SDK libraries were built with sanitizers: their runtime lives in the daemon.
  if(NOT ScaleBus_SANITIZE)
    target_link_options(${name} PRIVATE -Wl,--no-undefined)
  endif()
  if(NOT P_NO_INSTALL)
    if(NOT P_DESTINATION)
      set(P_DESTINATION "${SCALEBUS_PLUGIN_INSTALL_DIR}")
    endif()
    # 0644: the daemon refuses a plugin file its group or others may write.
    install(TARGETS ${name} LIBRARY DESTINATION "${P_DESTINATION}"
            PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
endfunction()
