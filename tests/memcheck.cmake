# Valgrind memcheck pass. ASan sees nothing inside libev and OpenSSL (they
# are not instrumented): a freed ev_timer still linked in libev's heap, or
# an SSL object used after vigil freed it, shows up only as invalid reads
# under valgrind. So the selected cmocka tests are registered a second time
# as memcheck/<name> (label "memcheck"): the same executable under
# valgrind, where any invalid read or write, use of an uninitialised value,
# or leak fails the test. tests/run.sh runs them as its own pass on the
# release build (ctest -L memcheck) and keeps them out of the release pass.
#
# Leaks: definite, indirect and possible ones are errors. Every test frees
# all it allocates, so a block left at exit is a leak; "possible" only means
# the last pointer to it points inside it, which is what a lost vigil
# object reached through an embedded libev watcher looks like. "Still
# reachable" (library globals) is not counted.
#
# Under valgrind, tests widen only the upper slack of real-time checks, via
# vt_slack_ms() in tests/support/slack.h.
#
# Not registered in sanitizer builds (valgrind cannot run ASan binaries) or
# without valgrind; -DVIGIL_MEMCHECK=OFF turns them off too.
option(VIGIL_MEMCHECK "Register the memcheck/ tests when valgrind is found" ON)

# Which tests run under memcheck: ctest names ("kind/test_x") matching one
# of these regexes, plus the test files named in VIGIL_MEMCHECK_NAMES. A
# new test joins by adding its name there.
set(VIGIL_MEMCHECK_PATTERNS
  "^unit/"                   # pure logic: uninitialised reads ASan misses
  "^integration/test_core_"  # the engine; listener + EMFILE in core_adopt
  "reentr"                   # every re-entrancy test, whatever its kind
  "^integration/test_listener"
  "^integration/test_client"
  "^integration/test_tls_")
set(VIGIL_MEMCHECK_NAMES
  test_census
  test_errors
  test_codec_conn
  test_group                 # worker threads: valgrind sees inside libev
  test_group_mailbox
  test_group_takeover        # evictions through mailboxes, holders shared
  test_group_census          # the fd set every worker writes
  test_group_metrics         # snapshots published for other threads
  test_group_tls             # proven identities across workers
  test_hub_census
  test_metrics_http
  test_metrics_hub
  test_ping_flood
  test_sockopt
  test_suspect
  test_takeover
  test_redis_dir        # tests/redis.cmake, built with hiredis
  test_redis_outage
  test_redis_malformed
  test_cluster)         # two cluster nodes in one process, real Redis
# Matched above but left out, each for its reason:
#   test_tls_interop    vigil runs in the spawned example servers, the test
#                       process only drives openssl s_client and mosquitto
#                       clients (interop with foreign stacks, not vigil's
#                       memory); the examples are not run under valgrind.
#   test_mqtt_gateway   same: vigil runs in the spawned mqtt_gateway.
#   test_cluster_gateway  same: two spawned mqtt_gateway nodes.
# Never selected: fault/ (network namespaces and real-time loss, run as
# root), fuzz/ (libFuzzer with its own ASan), python/ (the interpreter),
# cli/ and the mosquitto scripts (shell and foreign clients).
set(VIGIL_MEMCHECK_EXCLUDE test_tls_interop test_mqtt_gateway
  test_cluster_gateway)

set(VIGIL_MEMCHECK_OPTIONS
  --tool=memcheck
  --error-exitcode=99
  --leak-check=full
  --show-leak-kinds=definite,indirect,possible
  --errors-for-leak-kinds=definite,indirect,possible
  --track-origins=yes
  --num-callers=40
  --suppressions=${CMAKE_CURRENT_SOURCE_DIR}/valgrind.supp
  -q)

function(vigil_memcheck_selected test out)
  string(REGEX REPLACE "^[^/]*/" "" name "${test}")
  set(${out} 0 PARENT_SCOPE)
  if(name IN_LIST VIGIL_MEMCHECK_EXCLUDE)
    return()
  endif()
  if(name IN_LIST VIGIL_MEMCHECK_NAMES)
    set(${out} 1 PARENT_SCOPE)
    return()
  endif()
  foreach(pattern ${VIGIL_MEMCHECK_PATTERNS})
    if(test MATCHES "${pattern}")
      set(${out} 1 PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

# Runs once every tests/*.cmake has registered and tuned its tests, so the
# environment copied below is final.
function(vigil_register_memcheck_tests)
  get_property(tests DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} PROPERTY TESTS)
  set(count 0)
  foreach(test ${tests})
    if(NOT test MATCHES "^(unit|integration|fault)/(.+)$")
      continue() # scripts and bindings: no cmocka executable
    endif()
    set(target ${CMAKE_MATCH_1}_${CMAKE_MATCH_2})
    set(name ${CMAKE_MATCH_2})
    vigil_memcheck_selected(${test} selected)
    if(NOT selected OR NOT TARGET ${target})
      continue()
    endif()
    get_test_property(${test} ENVIRONMENT env)
    if(NOT env)
      set(env "")
    endif()
    list(APPEND env VIGIL_UNDER_VALGRIND=1)
    add_test(NAME memcheck/${name}
      COMMAND ${VIGIL_VALGRIND} ${VIGIL_MEMCHECK_OPTIONS}
              $<TARGET_FILE:${target}>)
    set_tests_properties(memcheck/${name} PROPERTIES LABELS memcheck
      TIMEOUT 600 SKIP_RETURN_CODE 77 ENVIRONMENT "${env}")
    math(EXPR count "${count} + 1")
  endforeach()
  message(STATUS "memcheck tests: ${count} under ${VIGIL_VALGRIND}")
endfunction()

if(NOT VIGIL_MEMCHECK)
  message(STATUS "memcheck tests: off (VIGIL_MEMCHECK=OFF)")
elseif(VIGIL_SANITIZE OR VIGIL_TSAN)
  message(STATUS "memcheck tests: not in sanitizer builds")
else()
  find_program(VIGIL_VALGRIND valgrind)
  if(VIGIL_VALGRIND)
    cmake_language(DEFER CALL vigil_register_memcheck_tests)
  else()
    message(STATUS "memcheck tests: valgrind not found, none registered")
  endif()
endif()
