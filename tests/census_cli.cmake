# vigil-census command-line tests: flag errors, JSON output, --watch and
# counts compared with `ss` for a port the script fills itself.
if(TARGET vigil-census)
  add_test(NAME cli/census
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_census_cli.sh
            $<TARGET_FILE:vigil-census>)
  set_tests_properties(cli/census PROPERTIES LABELS cli TIMEOUT 120
    SKIP_RETURN_CODE 77)
endif()
