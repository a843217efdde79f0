# Immersive.cmake — immersive_add_service(): turns annotated module folders into routes.
#
#   immersive_add_service(my-service
#       MODULES modules/math modules/geo     # folders of annotated .c files
#       [NAME my_service]                    # C name (default: the target's, '-' -> '_')
#       [TITLE "My API"] [VERSION 1.0.0]     # for the OpenAPI document
#       [DEFAULT_CONFIG]                     # write default_config.toml beside the program
#       [NO_DOCS])                           # no /docs and /redoc (nor their 3 MB of files)
#
# Adds the modules' sources to the target, runs gen/immersive_gen.py whenever one of them (or
# the generator) changes, compiles the generated routes, and puts the generated headers
# (<module>.gen.h, <name>.service.h) on the target's include path. The program then calls
# im_register_<name>(server) before starting it, or is one line:
#   int main(int argc, char **argv) { return im_main(argc, argv, im_register_<name>); }
# With DEFAULT_CONFIG (a program built on im_main), every build writes default_config.toml,
# every key the service knows with its default, beside the program.
#
# /docs (Swagger UI) and /redoc (ReDoc) work without internet: their files are compiled into the
# program, from IMMERSIVE_DOCS_DIR: immersive's third_party/docs (the pinned copy kept in its
# repository, installed as share/immersive/docs), or a local npm install's node_modules
# (-DIMMERSIVE_DOCS_DIR=/path/node_modules, with swagger-ui-dist and redoc there).
#
# CMake functions are global but variables are not: the generator's path is kept in a global
# property, so the function works wherever it is called from (a parent project of an
# add_subdirectory'd immersive, FetchContent, find_package). An installed immersiveConfig.cmake
# sets IMMERSIVE_GENERATOR before including this file; in the source tree it is gen/.
if(NOT IMMERSIVE_GENERATOR)
  set(IMMERSIVE_GENERATOR ${CMAKE_CURRENT_LIST_DIR}/../gen/immersive_gen.py)
endif()
get_filename_component(IMMERSIVE_GENERATOR "${IMMERSIVE_GENERATOR}" ABSOLUTE)
set_property(GLOBAL PROPERTY IMMERSIVE_GENERATOR "${IMMERSIVE_GENERATOR}")
if(NOT IMMERSIVE_DOCS_DIR)
  set(IMMERSIVE_DOCS_DIR ${CMAKE_CURRENT_LIST_DIR}/../third_party/docs)
endif()
set(IMMERSIVE_DOCS_DIR "${IMMERSIVE_DOCS_DIR}" CACHE PATH
    "swagger-ui-dist/ and redoc/ for /docs and /redoc (third_party/docs, or a node_modules)")
get_filename_component(_im_docs "${IMMERSIVE_DOCS_DIR}" ABSOLUTE)
set_property(GLOBAL PROPERTY IMMERSIVE_DOCS_DIR "${_im_docs}")

function(immersive_add_service target)
  cmake_parse_arguments(A "DEFAULT_CONFIG;NO_DOCS" "NAME;TITLE;VERSION" "MODULES" ${ARGN})
  if(NOT A_MODULES)
    message(FATAL_ERROR "immersive_add_service(${target}): MODULES is empty")
  endif()
  if(NOT A_NAME)
    string(MAKE_C_IDENTIFIER "${target}" A_NAME)
  endif()
  if(NOT A_TITLE)
    set(A_TITLE "${target}")
  endif()
  if(NOT A_VERSION)
    set(A_VERSION "${PROJECT_VERSION}")
  endif()
  if(NOT A_VERSION)
    set(A_VERSION "0.1.0")
  endif()
  get_property(generator GLOBAL PROPERTY IMMERSIVE_GENERATOR)
  # its package (imgen/, beside it in the source tree, share/immersive/imgen installed): an
  # edit there regenerates too
  get_filename_component(gen_dir "${generator}" DIRECTORY)
  file(GLOB gen_parts CONFIGURE_DEPENDS ${gen_dir}/imgen/*.py ${gen_dir}/../share/immersive/imgen/*.py)
  if(NOT generator OR NOT EXISTS "${generator}")
    message(FATAL_ERROR "immersive_add_service(${target}): the generator '${generator}' is "
                        "missing (include Immersive.cmake from immersive's cmake/ folder)")
  endif()
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/immersive_gen/${target})
  set(dirs "")
  set(sources "")
  set(outputs ${out}/${A_NAME}.routes.c ${out}/${A_NAME}.service.h ${out}/${A_NAME}.types.h
              ${out}/${A_NAME}.openapi.json)
  foreach(m ${A_MODULES})
    get_filename_component(dir ${m} ABSOLUTE)
    get_filename_component(mname ${dir} NAME)
    file(GLOB msrc CONFIGURE_DEPENDS ${dir}/*.c ${dir}/defaults.toml) # defaults.toml: its table
    list(APPEND dirs ${dir})
    list(APPEND sources ${msrc})
    list(APPEND outputs ${out}/${mname}.gen.h)
  endforeach()
  set(docs_args "")
  set(docs_files "")
  get_property(docs_dir GLOBAL PROPERTY IMMERSIVE_DOCS_DIR)
  if(NOT A_NO_DOCS)
    if(NOT EXISTS "${docs_dir}/swagger-ui-dist" OR NOT EXISTS "${docs_dir}/redoc")
      message(FATAL_ERROR "immersive_add_service(${target}): no swagger-ui-dist/ and redoc/ in "
                          "IMMERSIVE_DOCS_DIR='${docs_dir}' (set it to immersive's "
                          "third_party/docs or to a node_modules folder, or pass NO_DOCS)")
    endif()
    set(docs_args --docs ${docs_dir})
    file(GLOB_RECURSE docs_files CONFIGURE_DEPENDS ${docs_dir}/swagger-ui-dist/*
                                                   ${docs_dir}/redoc/*)
  endif()
  # The generator rewrites only the files that change (an edited handler body changes none),
  # so the rule's output is a stamp touched on every run: without it make would find the
  # untouched files older than the edited source and run the generator on every build.
  set(stamp ${out}/.generated)
  add_custom_command(
    OUTPUT ${stamp}
    BYPRODUCTS ${outputs}
    COMMAND ${Python3_EXECUTABLE} ${generator} --service ${A_NAME} --out ${out}
            --title "${A_TITLE}" --version ${A_VERSION} ${docs_args} ${dirs}
    COMMAND ${CMAKE_COMMAND} -E touch ${stamp}
    DEPENDS ${generator} ${gen_parts} ${sources} ${docs_files}
    COMMENT "immersive: generating the routes of ${target}"
    VERBATIM)
  # the generated headers are listed too, so that they exist before any source is compiled
  target_sources(${target} PRIVATE ${sources} ${outputs} ${stamp})
  target_include_directories(${target} PRIVATE ${out})
  target_link_libraries(${target} PRIVATE immersive::immersive)
  set_property(TARGET ${target} PROPERTY IMMERSIVE_OPENAPI ${out}/${A_NAME}.openapi.json)
  if(A_DEFAULT_CONFIG AND NOT CMAKE_CROSSCOMPILING)
    add_custom_command(TARGET ${target} POST_BUILD
      COMMAND $<TARGET_FILE:${target}> --print-default-config
              > $<TARGET_FILE_DIR:${target}>/default_config.toml
      COMMENT "immersive: writing default_config.toml beside ${target}")
  endif()
endfunction()
