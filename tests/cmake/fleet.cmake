# The scaler contract library (plugins/scaler) against an in-memory engine (tests/test_fleet.c).
sb_add_unit_test(test_fleet SOURCES test_fleet.c fake_host.c
  LIBRARIES scalebus_scaler sbcore PkgConfig::CJSON)
