# Layering of src/ (tests/lint/check_layers.py): no circle of more than 3
# files in the who-calls-whom graph, OpenSSL only in tls_* sources, and no
# internal call into vigil's host-facing API. Python 3, standard library.
find_program(VIGIL_PYTHON3 python3)
if(VIGIL_PYTHON3)
  add_test(NAME lint/check_layers
    COMMAND ${VIGIL_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/lint/check_layers.py
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(lint/check_layers PROPERTIES LABELS lint TIMEOUT 60)
endif()
