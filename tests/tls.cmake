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

# test_tls_alloc fails allocations one by one: calls to malloc, calloc and
# realloc in the test and in the statically linked library go through the
# test's __wrap_* functions, and so do the library's calls that open and
# close the window in which OpenSSL's allocations fail. See the test.
if(TARGET integration_test_tls_alloc)
  target_link_options(integration_test_tls_alloc PRIVATE
    -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc
    -Wl,--wrap=SSL_get1_peer_certificate -Wl,--wrap=X509_free)
endif()
