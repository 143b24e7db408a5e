# Smoke tests of the small embedding examples (examples/embed_*.c): real
# loopback clients against embed_adopt and embed_watch, two embed_clients
# through a restarting game_server. About 6 s each; see
# tests/examples/embed_smoke.sh. SKIP (77) without python3.
if(VIGIL_BUILD_EXAMPLES)
  set(VIGIL_EMBED_SMOKE ${CMAKE_CURRENT_SOURCE_DIR}/examples/embed_smoke.sh)
  foreach(mode adopt watch)
    add_test(NAME examples/embed_${mode}
      COMMAND bash ${VIGIL_EMBED_SMOKE} ${mode} $<TARGET_FILE:embed_${mode}>)
  endforeach()
  add_test(NAME examples/embed_client
    COMMAND bash ${VIGIL_EMBED_SMOKE} client $<TARGET_FILE:embed_client>
            $<TARGET_FILE:game_server>)
  set_tests_properties(examples/embed_adopt examples/embed_watch
    examples/embed_client PROPERTIES LABELS examples TIMEOUT 60
    SKIP_RETURN_CODE 77)
endif()
