# Documentation checks (label docs):
#   docs/links            every relative link in README.md and docs/**/*.md
#                         points to an existing file and heading anchor
#   docs/links_checker    the link checker reports exactly the broken links
#                         of a small tree made to hold each kind of link
#   docs/man/<tool>       each docs/man/<tool>.1 renders without a groff
#                         warning and documents exactly the long options of
#                         `<tool> --help` (skips without groff)
#   docs/readme_embedding README's "Embedding in 30 lines" example compiles
#                         and links against the library just built
set(VIGIL_DOCS_TESTS ${CMAKE_CURRENT_SOURCE_DIR}/docs)

find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME docs/links
    COMMAND ${Python3_EXECUTABLE} ${VIGIL_DOCS_TESTS}/check_links.py
            --root ${PROJECT_SOURCE_DIR})
  add_test(NAME docs/links_checker
    COMMAND ${Python3_EXECUTABLE} ${VIGIL_DOCS_TESTS}/test_check_links.py)
  set_tests_properties(docs/links docs/links_checker PROPERTIES
    LABELS docs TIMEOUT 60 ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
endif()

file(GLOB VIGIL_MAN_PAGES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.1)
foreach(page ${VIGIL_MAN_PAGES})
  get_filename_component(tool ${page} NAME_WE)
  if(TARGET ${tool})
    add_test(NAME docs/man/${tool}
      COMMAND bash ${VIGIL_DOCS_TESTS}/check_man.sh ${page}
              $<TARGET_FILE:${tool}>)
    set_tests_properties(docs/man/${tool} PROPERTIES LABELS docs TIMEOUT 60
      SKIP_RETURN_CODE 77)
  endif()
endforeach()

# Built like a host program would be: the installed headers' directory,
# the shared library, libev; the sanitizer flags when the library has them.
set(VIGIL_SNIPPET_FLAGS)
if(VIGIL_SANITIZE)
  set(VIGIL_SNIPPET_FLAGS -fsanitize=address,undefined)
endif()
add_test(NAME docs/readme_embedding
  COMMAND bash ${VIGIL_DOCS_TESTS}/check_readme_snippet.sh
          ${PROJECT_SOURCE_DIR}/README.md "## Embedding in 30 lines"
          ${CMAKE_C_COMPILER} -std=c11 ${VIGIL_WARNINGS} -Werror
          ${VIGIL_SNIPPET_FLAGS} -I${PROJECT_SOURCE_DIR}/include
          -I${LIBEV_INCLUDE_DIR} $<TARGET_FILE:vigil_shared> ${LIBEV_LIBRARY})
set_tests_properties(docs/readme_embedding PROPERTIES LABELS docs TIMEOUT 60)
