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

if(VIGIL_BUILD_EXAMPLES)
  # echo_server, game_server and mqtt_gateway with --metrics, alone and
  # with --workers 2: each exposition passes promtool; 404 elsewhere.
  # About 4 s; SKIPs (77) without promtool or curl.
  add_test(NAME examples/metrics_endpoints
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/metrics/examples_metrics.sh
            $<TARGET_FILE:echo_server> $<TARGET_FILE:game_server>
            $<TARGET_FILE:mqtt_gateway>)
  set_tests_properties(examples/metrics_endpoints PROPERTIES
    LABELS examples TIMEOUT 60 SKIP_RETURN_CODE 77)

  # A real Prometheus server scraping mqtt_gateway every second while
  # device_sim drives takeovers, until its HTTP API shows them. About 12 s;
  # SKIPs (77) without prometheus, promtool, curl or python3.
  add_test(NAME integration/metrics_prometheus
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/metrics/prometheus_scrape.sh
            $<TARGET_FILE:mqtt_gateway> $<TARGET_FILE:device_sim>)
  set_tests_properties(integration/metrics_prometheus PROPERTIES
    LABELS integration TIMEOUT 90 SKIP_RETURN_CODE 77)
endif()
