# Finds ggml for the conformance tests in this directory; sets TERN_GGML_FOUND (and, when found,
# the imported targets ggml::ggml, ggml::ggml-base, ggml::ggml-cpu).
#
# Search order:
#   1. find_package(ggml CONFIG) on its own: an explicit -Dggml_DIR=<dir with ggmlConfig.cmake>,
#      or a prefix in CMAKE_PREFIX_PATH, or a system install;
#   2. the Python package `libggml` of the first python3 on PATH (`pip install libggml-python`:
#      a prebuilt CPU ggml whose prefix, <site-packages>/libggml, holds include/, lib64/*.so and
#      lib64/cmake/ggml/ggmlConfig.cmake). By hand that is
#        cmake ... -Dggml_DIR="$(python3 -c 'import libggml, os; print(os.path.dirname(libggml.__file__))')/lib64/cmake/ggml"
#      (CMAKE_PREFIX_PATH=<site-packages>/libggml is not enough on Debian/Ubuntu, whose CMake
#      does not search lib64/ under a prefix).
# Not in cross builds (a host Python's libggml is for the host). -DTERN_GGML_TESTS=OFF disables
# the tests altogether.
option(TERN_GGML_TESTS "Build the conformance tests against ggml (examples-c/ggml) when ggml is found" ON)
set(TERN_GGML_FOUND OFF)
set(TERN_GGML_SKIP_REASON "libggml not found (pip install libggml-python)")
if(NOT TERN_GGML_TESTS)
  set(TERN_GGML_SKIP_REASON "disabled with -DTERN_GGML_TESTS=OFF")
  return()
endif()
if(CMAKE_CROSSCOMPILING)
  set(TERN_GGML_SKIP_REASON "cross build (the prebuilt libggml is for the host)")
  return()
endif()

find_package(ggml CONFIG QUIET)
if(NOT ggml_FOUND)
  find_program(TERN_PYTHON3 NAMES python3 python)
  if(TERN_PYTHON3)
    execute_process(
      COMMAND "${TERN_PYTHON3}" -c
              "import libggml, os, importlib.metadata as m; print(os.path.dirname(libggml.__file__)); print(m.version('libggml-python'))"
      RESULT_VARIABLE _tern_py_rc OUTPUT_VARIABLE _tern_py_out
      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    string(REPLACE "\n" ";" _tern_py_out "${_tern_py_out}")
    list(LENGTH _tern_py_out _tern_py_n)
    if(_tern_py_rc EQUAL 0 AND _tern_py_n EQUAL 2)
      list(GET _tern_py_out 0 TERN_GGML_PY_PREFIX)
      list(GET _tern_py_out 1 _tern_py_version)
      message(STATUS "tern ggml tests: python3 has libggml-python ${_tern_py_version} at ${TERN_GGML_PY_PREFIX}")
      unset(ggml_DIR CACHE)
      find_package(ggml CONFIG QUIET NO_DEFAULT_PATH
        PATHS "${TERN_GGML_PY_PREFIX}/lib64/cmake/ggml" "${TERN_GGML_PY_PREFIX}/lib/cmake/ggml")
    endif()
  endif()
endif()

if(ggml_FOUND AND TARGET ggml::ggml)
  set(TERN_GGML_FOUND ON)
  message(STATUS "tern ggml tests: using ${ggml_DIR}/ggmlConfig.cmake")
endif()
