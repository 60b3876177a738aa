# The policy library and the target and threshold connectors (tests/test_policy.c). The plugin
# test loads build/plugins/target.so and threshold.so when they are built.
if(TARGET scalebus_policy AND TARGET sb_target_core AND TARGET sb_threshold_core)
  sb_add_unit_test(test_policy SOURCES test_policy.c fake_host.c
    LIBRARIES scalebus_policy sb_target_core sb_threshold_core sbcore PkgConfig::LIBUV)
  add_dependencies(test_policy plugin_target plugin_threshold)
endif()
