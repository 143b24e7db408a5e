# Benchmark smoke runs: each benchmark program runs once at a tiny size, so
# a change that breaks a benchmark (an API whose meaning changed under it,
# say) fails here rather than in the next bench/run.sh. The numbers are not
# looked at: targets live in bench/, never in timed tests.
if(NOT VIGIL_BUILD_BENCH)
  return()
endif()
function(vigil_bench_smoke name target)
  add_test(NAME bench/${name} COMMAND ${target} ${ARGN})
  set_tests_properties(bench/${name} PROPERTIES LABELS bench TIMEOUT 120)
endfunction()
vigil_bench_smoke(stall bench_stall --quick --n 200 --reps 1)
vigil_bench_smoke(takeover bench_takeover --takeovers 50)
vigil_bench_smoke(timers bench_timers --quick --n 10000 --reps 1)
vigil_bench_smoke(memory bench_memory --n 500 --reps 1)
