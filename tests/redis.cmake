# The Redis identity directory's tests (tests/redis/), built only when the
# library has src/cluster (hiredis found). test_redis_url and
# test_redis_proto are pure and register as unit/<name>; the others run a
# real redis-server on an ephemeral port (tests/support/redisfix.h), or a
# fake store on the test's loop, and register as integration/<name>, so
# both kinds join the label, pattern and memcheck rules of the rest.
if(NOT VIGIL_HAVE_REDIS)
  message(STATUS "Redis directory tests: none (no src/cluster in this build)")
  return()
endif()

set(VIGIL_REDIS_UNIT_TESTS test_redis_url test_redis_proto)
file(GLOB VIGIL_REDIS_TESTS CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/redis/test_*.c)
if(NOT VIGIL_TLS) # test_cluster proves identities with certificates
  list(FILTER VIGIL_REDIS_TESTS EXCLUDE REGEX "/test_cluster\\.c$")
endif()
foreach(src ${VIGIL_REDIS_TESTS})
  get_filename_component(name ${src} NAME_WE)
  if(name IN_LIST VIGIL_REDIS_UNIT_TESTS)
    set(kind unit)
    set(helpers "")
  else()
    set(kind integration)
    set(helpers ${CMAKE_CURRENT_SOURCE_DIR}/redis/dirtest.c
                ${CMAKE_CURRENT_SOURCE_DIR}/redis/clusternode.c)
  endif()
  set(target ${kind}_${name})
  add_executable(${target} ${src} ${helpers})
  target_include_directories(${target} PRIVATE ${HIREDIS_INCLUDE_DIR}
                                               ${CMAKE_CURRENT_SOURCE_DIR}/redis)
  target_compile_options(${target} PRIVATE ${VIGIL_WARNINGS})
  target_link_libraries(${target} PRIVATE vigil_testlib)
  vigil_test_sysfault(${target})
  add_test(NAME ${kind}/${name} COMMAND ${target})
  set_tests_properties(${kind}/${name} PROPERTIES LABELS "${kind};redis"
    TIMEOUT 300 SKIP_RETURN_CODE 77
    ENVIRONMENT "VIGIL_BUILD_DIR=${PROJECT_BINARY_DIR};VIGIL_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endforeach()

# test_cluster_gateway runs two examples/mqtt_gateway nodes with --cluster
# and talks MQTT to them: the codec for its raw clients, and the gateway's
# path (it SKIPs when the gateway was not built). Not under memcheck: vigil
# runs in the spawned gateways.
if(TARGET integration_test_cluster_gateway)
  set(VIGIL_MQTT_DIR ${PROJECT_SOURCE_DIR}/examples/mqtt)
  target_sources(integration_test_cluster_gateway PRIVATE
    ${VIGIL_MQTT_DIR}/mqtt_codec.c ${VIGIL_MQTT_DIR}/mqtt_topic.c)
  target_include_directories(integration_test_cluster_gateway PRIVATE
    ${VIGIL_MQTT_DIR})
  if(VIGIL_BUILD_EXAMPLES)
    add_dependencies(integration_test_cluster_gateway mqtt_gateway)
    set_property(TEST integration/test_cluster_gateway APPEND PROPERTY
      ENVIRONMENT "MQTT_GATEWAY=$<TARGET_FILE:mqtt_gateway>")
  endif()
endif()
