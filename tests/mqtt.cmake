# MQTT gateway and device simulator (examples/mqtt_gateway.c,
# examples/device_sim.c, examples/mqtt/).
#
# Unit tests: tests/unit/test_mqtt_{codec,topic}.c are globbed like every
# unit test; they get the codec sources compiled in here, so they build
# even with VIGIL_BUILD_EXAMPLES=OFF.
set(VIGIL_MQTT_DIR ${PROJECT_SOURCE_DIR}/examples/mqtt)
foreach(target unit_test_mqtt_codec unit_test_mqtt_topic)
  if(TARGET ${target})
    target_sources(${target} PRIVATE ${VIGIL_MQTT_DIR}/mqtt_codec.c
      ${VIGIL_MQTT_DIR}/mqtt_topic.c ${VIGIL_MQTT_DIR}/mqtt_subs.c)
    target_include_directories(${target} PRIVATE ${VIGIL_MQTT_DIR})
  endif()
endforeach()
