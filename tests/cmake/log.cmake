# The daemon's log lines, text and log.format json (core/log.c).
sb_add_unit_test(test_log SOURCES test_log.c LIBRARIES sbcore)
