# test_waiter and test_combine: the waiter and combine connectors' algorithms (their *_core
# libraries), and, when the plugins are built (they need the policy SDK, scalebus_policy), the
# plugins themselves loaded with dlopen behind the shared fake host (fake_host.c, which needs
# sbcore), their options read by core/config.c.
sb_add_unit_test(test_waiter SOURCES test_waiter.c fake_host.c LIBRARIES sb_waiter_core sbcore)
if(TARGET plugin_waiter)
  target_compile_definitions(test_waiter PRIVATE SB_WAITER_PLUGIN="$<TARGET_FILE:plugin_waiter>")
  add_dependencies(test_waiter plugin_waiter)
endif()

sb_add_unit_test(test_combine SOURCES test_combine.c fake_host.c LIBRARIES sb_combine_core sbcore)
if(TARGET plugin_combine)
  target_compile_definitions(test_combine PRIVATE
    SB_COMBINE_PLUGIN="$<TARGET_FILE:plugin_combine>")
  add_dependencies(test_combine plugin_combine)
endif()
