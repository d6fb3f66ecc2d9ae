# Unit tests: one Check executable per tests/unit/test_*.c (label "unit").
# Integration tests: one ctest per tests/integration/test_*.py, run with the
# system Python (Debian's, where python3-aiosmtpd lives) against the real
# binary on loopback ports (label "integration").
pkg_check_modules(CHECK REQUIRED IMPORTED_TARGET check)

file(GLOB UNIT_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src ${UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE tlsgate_core PkgConfig::CHECK)
  add_test(NAME unit/${name} COMMAND ${name})
  set_tests_properties(unit/${name} PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "CK_FORK=yes;TLSGATE_TEST_DATA=${CMAKE_SOURCE_DIR}/tests/data")
endforeach()

set(TLSGATE_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with aiosmtpd for integration tests")
file(GLOB INTEGRATION_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/integration/test_*.py)
foreach(src ${INTEGRATION_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME integration/${name} COMMAND ${TLSGATE_PYTHON} -m unittest -v ${name}
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/integration)
  set_tests_properties(integration/${name} PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "TLSGATE_BIN=$<TARGET_FILE:tlsgate>;TLSGATE_SOURCE=${CMAKE_SOURCE_DIR}")
endforeach()
