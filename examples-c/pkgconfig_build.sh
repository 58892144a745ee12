#!/bin/sh
# Build quickstart.c against an installed tern using only pkg-config, then run it.
# usage: pkgconfig_build.sh shared|static PREFIX LIBDIR CC PKG_CONFIG quickstart.c WORKDIR
#   shared: cc quickstart.c $(pkg-config --cflags --libs tern), run with LD_LIBRARY_PATH=LIBDIR
#   static: cc quickstart.c $(pkg-config --static --cflags --libs tern) with -ltern replaced by
#           -l:libtern.a, which checks that Libs.private lists every system library needed.
set -eu
kind=$1 prefix=$2 libdir=$3 cc=$4 pkgconfig=$5 src=$6 work=$7
mkdir -p "$work"
PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
echo "prefix:      $prefix"
echo "pkg-config:  $("$pkgconfig" --modversion tern)"
cflags=$("$pkgconfig" --cflags tern)
case "$kind" in
    shared) libs=$("$pkgconfig" --libs tern) ;;
    static) libs=$("$pkgconfig" --static --libs tern | sed 's/-ltern\b/-l:libtern.a/') ;;
    *) echo "unknown kind $kind" >&2; exit 2 ;;
esac
echo "compile:     $cc -std=c11 -Wall -Wextra -Werror -pedantic $cflags quickstart.c $libs -lm"
# shellcheck disable=SC2086  # word splitting of the pkg-config output is intended
"$cc" -std=c11 -Wall -Wextra -Werror -pedantic $cflags -o "$work/quickstart" "$src" $libs -lm
if [ "$kind" = static ] && readelf -d "$work/quickstart" | grep -q 'NEEDED.*libtern'; then
    echo "FAIL: static build still depends on libtern.so" >&2
    exit 1
fi
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/quickstart"
