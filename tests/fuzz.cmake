# Fuzz smoke run: builds tests/fuzz/fuzz_frame.c with clang + libFuzzer +
# ASan/UBSan (independent of this project's compiler and VIGIL_SANITIZE)
# and fuzzes the frame codec for 20 s. Skips (77) without clang/libFuzzer.
# Longer runs: VIGIL_FUZZ_SECONDS=600 ctest -R fuzz/ (raise the timeout
# with ctest --timeout too).
add_test(NAME fuzz/frame
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzz.sh
          ${PROJECT_BINARY_DIR}/fuzz 20)
set_tests_properties(fuzz/frame PROPERTIES LABELS fuzz TIMEOUT 120
  SKIP_RETURN_CODE 77)
