# Metrics (include/vigil/metrics.h) and the examples' /metrics endpoint
# (examples/metrics/).
#
# tests/integration/test_metrics_http.c is globbed like every test; it
# gets the endpoint's source compiled in here (so it builds even with
# VIGIL_BUILD_EXAMPLES=OFF), and counts the heap through --wrap'ed
# allocation functions to show an oversized request does not grow it.
set(VIGIL_METRICS_HTTP_DIR ${PROJECT_SOURCE_DIR}/examples/metrics)
if(TARGET integration_test_metrics_http)
  target_sources(integration_test_metrics_http PRIVATE
    ${VIGIL_METRICS_HTTP_DIR}/metrics_http.c)
  target_include_directories(integration_test_metrics_http PRIVATE
    ${VIGIL_METRICS_HTTP_DIR})
  target_link_options(integration_test_metrics_http PRIVATE
    -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=free)
endif()
