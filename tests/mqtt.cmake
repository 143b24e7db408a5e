# MQTT gateway and device simulator (examples/mqtt_gateway.c,
# examples/device_sim.c, examples/mqtt/).
#
# tests/unit/test_mqtt_{codec,topic}.c and tests/integration/
# test_mqtt_gateway.c are globbed like every test; they get the codec
# sources compiled in here, so they build even with
# VIGIL_BUILD_EXAMPLES=OFF (the gateway test then SKIPs).
set(VIGIL_MQTT_DIR ${PROJECT_SOURCE_DIR}/examples/mqtt)
foreach(target unit_test_mqtt_codec unit_test_mqtt_topic
               integration_test_mqtt_gateway)
  if(TARGET ${target})
    target_sources(${target} PRIVATE ${VIGIL_MQTT_DIR}/mqtt_codec.c
      ${VIGIL_MQTT_DIR}/mqtt_topic.c ${VIGIL_MQTT_DIR}/mqtt_subs.c)
    target_include_directories(${target} PRIVATE ${VIGIL_MQTT_DIR})
  endif()
endforeach()

# The gateway test runs examples/mqtt_gateway: build it first and pass its
# path (the test falls back to VIGIL_BUILD_DIR/examples/mqtt_gateway).
if(TARGET integration_test_mqtt_gateway AND VIGIL_BUILD_EXAMPLES)
  add_dependencies(integration_test_mqtt_gateway mqtt_gateway)
  set_property(TEST integration/test_mqtt_gateway APPEND PROPERTY
    ENVIRONMENT "MQTT_GATEWAY=$<TARGET_FILE:mqtt_gateway>")
endif()

# Real MQTT clients (mosquitto-clients) against the gateway: keep-alive,
# ghost drop, pub/sub, takeover, protocol refusal. About 9 s; SKIPs (77)
# without mosquitto_sub/mosquitto_pub.
if(VIGIL_BUILD_EXAMPLES)
  add_test(NAME integration/mqtt_mosquitto_clients
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mqtt/mosquitto_clients.sh
            $<TARGET_FILE:mqtt_gateway>)
  set_tests_properties(integration/mqtt_mosquitto_clients PROPERTIES
    LABELS integration TIMEOUT 60 SKIP_RETURN_CODE 77)
endif()

# device_sim against the gateway: 200 silent-rebooting devices, every ghost
# ended by takeover, census of the port clean at the end. About 6 s.
if(VIGIL_BUILD_EXAMPLES)
  add_test(NAME integration/mqtt_device_sim_smoke
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mqtt/device_sim_smoke.sh
            $<TARGET_FILE:mqtt_gateway> $<TARGET_FILE:device_sim>)
  set_tests_properties(integration/mqtt_device_sim_smoke PROPERTIES
    LABELS integration TIMEOUT 60)
endif()

# Takeover by class with real clients: a live client displaced gets its last
# message and a clean FIN (class=live), two mosquitto_sub with one id take
# turns cleanly, a client blackholed in a network namespace is reset
# (class=ghost; that part skips without root, ip or nft). About 3 s; SKIPs
# (77) without mosquitto-clients or python3.
if(VIGIL_BUILD_EXAMPLES)
  add_test(NAME integration/mqtt_takeover_class
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mqtt/takeover_class.sh
            $<TARGET_FILE:mqtt_gateway>)
  set_tests_properties(integration/mqtt_takeover_class PROPERTIES
    LABELS integration TIMEOUT 60 SKIP_RETURN_CODE 77)
endif()
