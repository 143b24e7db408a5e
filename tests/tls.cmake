# TLS interop (tests/integration/test_tls_interop.c) runs the echo_server
# and mqtt_gateway examples against `openssl s_client` and the mosquitto
# clients: build the examples first when they are part of the build. The
# test skips (exit 77) when an example or a client tool is missing.
if(TARGET integration_test_tls_interop)
  foreach(example echo_server mqtt_gateway)
    if(TARGET ${example})
      add_dependencies(integration_test_tls_interop ${example})
    endif()
  endforeach()
  set_property(TEST integration/test_tls_interop APPEND PROPERTY LABELS interop)
endif()
