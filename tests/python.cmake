# Python bindings (bindings/python):
# - python/test_*: one ctest per bindings/python/tests/test_*.py, the
#   package's source tree against the shared library built here
#   (VIGIL_LIBRARY). abi_dump prints the C struct layouts the ctypes
#   mirrors are checked against.
# - python/installed: the same tests as users run them, pip-installed into
#   a venv against the library cmake --install put in a scratch prefix
#   (bindings/python/tests/run_installed.sh).
#
# Not registered when VIGIL_SANITIZE or VIGIL_TSAN is ON: python3 is not
# instrumented, so loading an ASan (or TSan) libvigil.so into it needs
# LD_PRELOAD of the runtime and reports the interpreter's own allocations.
# The normal (non-sanitizer) pass of tests/run.sh runs them.
find_package(Python3 COMPONENTS Interpreter)
set(VIGIL_PY_DIR ${PROJECT_SOURCE_DIR}/bindings/python)
if(VIGIL_SANITIZE OR VIGIL_TSAN)
  message(STATUS "Python binding tests: skipped in sanitizer builds")
elseif(NOT Python3_Interpreter_FOUND)
  message(STATUS "Python binding tests: no python3 found, skipped")
else()
  add_executable(python_abi_dump ${VIGIL_PY_DIR}/tests/abi_dump.c)
  target_include_directories(python_abi_dump PRIVATE
    ${PROJECT_SOURCE_DIR}/include ${LIBEV_INCLUDE_DIR})
  target_compile_options(python_abi_dump PRIVATE ${VIGIL_WARNINGS})
  file(GLOB VIGIL_PY_TESTS CONFIGURE_DEPENDS ${VIGIL_PY_DIR}/tests/test_*.py)
  foreach(test ${VIGIL_PY_TESTS})
    get_filename_component(name ${test} NAME_WE)
    add_test(NAME python/${name}
      COMMAND ${Python3_EXECUTABLE} -m unittest discover -v
              -s ${VIGIL_PY_DIR}/tests -p ${name}.py)
    set_tests_properties(python/${name} PROPERTIES LABELS python TIMEOUT 120
      ENVIRONMENT "VIGIL_LIBRARY=$<TARGET_FILE:vigil_shared>;VIGIL_BUILD_DIR=${PROJECT_BINARY_DIR};VIGIL_ABI_DUMP=$<TARGET_FILE:python_abi_dump>;PYTHONPATH=${VIGIL_PY_DIR};PYTHONDONTWRITEBYTECODE=1")
  endforeach()

  # The venv borrows setuptools and wheel from the system site-packages
  # (apt's python3-setuptools, python3-wheel), so it is made with the
  # distribution's python3 when there is one, not a pyenv or other build
  # found first on PATH. About 6 s: venv, pip install, the tests.
  find_program(VIGIL_SYSTEM_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT VIGIL_SYSTEM_PYTHON3)
    set(VIGIL_SYSTEM_PYTHON3 ${Python3_EXECUTABLE})
  endif()
  add_test(NAME python/installed
    COMMAND bash ${VIGIL_PY_DIR}/tests/run_installed.sh ${PROJECT_BINARY_DIR}
            ${VIGIL_SYSTEM_PYTHON3} ${CMAKE_COMMAND})
  set_tests_properties(python/installed PROPERTIES LABELS python TIMEOUT 300
    SKIP_RETURN_CODE 77
    ENVIRONMENT "VIGIL_ABI_DUMP=$<TARGET_FILE:python_abi_dump>")
endif()
