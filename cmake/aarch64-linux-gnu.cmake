# CMake toolchain file: cross build for aarch64 Linux (Debian/Ubuntu cross packages) with the C
# examples run under qemu-user by ctest. Used by scripts/test-all.sh:
#
#   cmake -S . -B build-arm --toolchain cmake/aarch64-linux-gnu.cmake \
#         -DTERN_CARGO_TARGET=aarch64-unknown-linux-gnu
#   cmake --build build-arm && ctest --test-dir build-arm
#
# Needs: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user, and
# `rustup target add aarch64-unknown-linux-gnu` (scripts/setup.sh does both). The top-level
# CMakeLists.txt hands CMAKE_C_COMPILER to cargo as the linker for TERN_CARGO_TARGET.
#
# Cache variables (set with -D):
#   TERN_AARCH64_SYSROOT  the target's libc/loader for qemu -L (default /usr/aarch64-linux-gnu)
#   TERN_QEMU_CPU         qemu -cpu model (default max: NEON + dotprod + i8mm; cortex-a53 has
#                         NEON only)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TERN_AARCH64_PREFIX aarch64-linux-gnu- CACHE STRING "Cross tool prefix")
set(CMAKE_C_COMPILER ${TERN_AARCH64_PREFIX}gcc)
# tern itself is C only; a parent project that enables C++ needs g++-aarch64-linux-gnu.
find_program(TERN_AARCH64_CXX ${TERN_AARCH64_PREFIX}g++)
if(TERN_AARCH64_CXX)
  set(CMAKE_CXX_COMPILER ${TERN_AARCH64_CXX})
endif()

set(TERN_AARCH64_SYSROOT /usr/aarch64-linux-gnu CACHE PATH
    "aarch64 libc and dynamic loader for qemu-aarch64 -L")
set(TERN_QEMU_CPU max CACHE STRING "qemu-aarch64 -cpu model for running tests")
find_program(TERN_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR
    "${TERN_QEMU_AARCH64};-L;${TERN_AARCH64_SYSROOT};-cpu;${TERN_QEMU_CPU}")

# Headers and libraries of the target only; programs (cmake, cargo, sh) from the host.
set(CMAKE_FIND_ROOT_PATH ${TERN_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
