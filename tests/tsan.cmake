# ThreadSanitizer pass. The tests whose vigil code runs on several threads
# at once (groups: worker threads, mailboxes posted to from any thread,
# statistics read from any thread) carry the label "tsan"; tests/run.sh
# builds build-tsan/ with -DVIGIL_TSAN=ON and runs `ctest -L tsan` there.
# Every other test runs vigil on one thread, where TSan has nothing to
# find.
#
# libev is not instrumented, so TSan sees neither its memory accesses nor
# its fences (ev_async_send's flag and its eventfd write): it can neither
# report races inside libev nor prove vigil's ordering through them. vigil
# never relies on that: every datum handed between threads goes through a
# mutex or an atomic (src/group_internal.h). No suppression is needed; a
# report is a vigil bug.
# Also the example servers' log writer (examples/linelog), shared by
# their worker threads.
# test_cluster runs a group as one cluster node (tests/redis.cmake).
set(VIGIL_TSAN_PATTERN
  "^integration/test_group|^unit/test_linelog|^integration/test_cluster$")

function(vigil_label_tsan_tests)
  get_property(tests DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} PROPERTY TESTS)
  foreach(test ${tests})
    if(test MATCHES "${VIGIL_TSAN_PATTERN}")
      set_property(TEST ${test} APPEND PROPERTY LABELS tsan)
    endif()
  endforeach()
endfunction()
vigil_label_tsan_tests()
