# The example servers' buffered log lines (examples/linelog/): the unit
# test gets the source compiled in, so it builds with
# VIGIL_BUILD_EXAMPLES=OFF too.
if(TARGET unit_test_linelog)
  set(VIGIL_LINELOG_DIR ${PROJECT_SOURCE_DIR}/examples/linelog)
  target_sources(unit_test_linelog PRIVATE ${VIGIL_LINELOG_DIR}/linelog.c)
  target_include_directories(unit_test_linelog PRIVATE ${VIGIL_LINELOG_DIR})
  find_package(Threads REQUIRED)
  target_link_libraries(unit_test_linelog PRIVATE Threads::Threads)
endif()
