# Fuzz smoke runs: tests/fuzz/run_fuzz.sh builds each tests/fuzz/fuzz_<t>.c
# with clang + libFuzzer + ASan/UBSan (independent of this project's
# compiler and VIGIL_SANITIZE) and fuzzes it from its seed corpus
# (tests/fuzz/corpus/<t>/) for a short, fixed time. Skips (77) without
# clang/libFuzzer.
#   frame   the frame codec                    20 s
#   mqtt    the example MQTT codec             15 s
#   census  the sock_diag reply parser         15 s
#   event   the event line formatter           15 s
# Longer runs: VIGIL_FUZZ_SECONDS=600 ctest -R fuzz/ --timeout 700, or one
# target by hand: VIGIL_FUZZ_SECONDS=600 tests/fuzz/run_fuzz.sh mqtt DIR.
foreach(target_seconds frame:20 mqtt:15 census:15 event:15)
  string(REPLACE ":" ";" pair ${target_seconds})
  list(GET pair 0 target)
  list(GET pair 1 seconds)
  add_test(NAME fuzz/${target}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzz.sh ${target}
            ${PROJECT_BINARY_DIR}/fuzz ${seconds})
  set_tests_properties(fuzz/${target} PROPERTIES LABELS fuzz TIMEOUT 120
    SKIP_RETURN_CODE 77)
endforeach()
