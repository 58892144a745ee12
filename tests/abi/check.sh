#!/bin/sh
# ABI checks for libtern (shared/design/c_abi.md 2.9 and 2.12):
#   1. include/tern.h compiles warning-free as C11, C2x and C++17 (-Wall -Wextra -Werror
#      -pedantic), and including it twice in one translation unit works (C and C++);
#   2. the functions exported by libtern.so are exactly tests/abi/exported_symbols.txt;
#   3. every function the header declares is exported, and vice versa;
#   4. the soname is libtern.so.<sover> (0.MINOR while 0.x).
#
# usage: tests/abi/check.sh path/to/libtern.so[.X.Y.Z] path/to/include-dir
#        tests/abi/check.sh --update path/to/libtern.so   (rewrite exported_symbols.txt)
# env:   CC, CXX, NM, READELF (cross binutils), TERN_EXPECTED_SONAME (default libtern.so.0.1)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
expected_list="$here/exported_symbols.txt"
CC=${CC:-cc}
CXX=${CXX:-c++}
NM=${NM:-nm}
READELF=${READELF:-readelf}
expected_soname=${TERN_EXPECTED_SONAME:-libtern.so.0.1}

# Defined, dynamic, function (text) symbols, one per line, sorted.
exported_functions() {
    "$NM" -D --defined-only "$1" | awk '$2 == "T" || $2 == "i" { print $3 }' | sed 's/@.*//' | LC_ALL=C sort -u
}

if [ "${1:-}" = "--update" ]; then
    [ $# -eq 2 ] || { echo "usage: $0 --update path/to/libtern.so" >&2; exit 2; }
    exported_functions "$2" > "$expected_list"
    echo "wrote $(wc -l < "$expected_list") symbols to $expected_list"
    exit 0
fi

[ $# -eq 2 ] || { echo "usage: $0 path/to/libtern.so include-dir" >&2; exit 2; }
lib=$1
inc=$2
header="$inc/tern.h"
[ -f "$lib" ] || { echo "FAIL: no library at $lib" >&2; exit 1; }
[ -f "$header" ] || { echo "FAIL: no header at $header" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok:   $*"; }

# --- 1. header compiles --------------------------------------------------------------------
printf '#include "tern.h"\nint tern_abi_check_dummy(void) { return (int)sizeof(tern_status); }\n' > "$tmp/one.c"
printf '#include "tern.h"\n#include "tern.h"\nint tern_abi_check_dummy(void) { return (int)sizeof(tern_status); }\n' > "$tmp/two.c"
warn="-Wall -Wextra -Werror -pedantic"

compile() { # name, compiler, flags..., source
    name=$1; shift
    if "$@" $warn -I"$inc" -c -o "$tmp/out.o" > "$tmp/log" 2>&1; then
        pass "$name"
    else
        fail "$name"; sed 's/^/      /' "$tmp/log" >&2
    fi
}
compile "header as C11"                 "$CC"  -std=c11   -x c   "$tmp/one.c"
compile "header as C2x"                 "$CC"  -std=c2x   -x c   "$tmp/one.c"
compile "header as C++17"               "$CXX" -std=c++17 -x c++ "$tmp/one.c"
# C23 is where the enums get a fixed underlying type (`enum x : int32_t`); only newer
# compilers (GCC >= 13 with -std=c23) take that branch, so it is tried when available.
if "$CC" -std=c23 -x c -c -o "$tmp/probe.o" /dev/null > /dev/null 2>&1; then
    compile "header as C23"             "$CC"  -std=c23   -x c   "$tmp/one.c"
else
    echo "skip: header as C23 ($CC does not accept -std=c23)"
fi
compile "header double include (C11)"   "$CC"  -std=c11   -x c   "$tmp/two.c"
compile "header double include (C++17)" "$CXX" -std=c++17 -x c++ "$tmp/two.c"

# --- 1b. every TERN_*_INIT macro initializes its struct (C and C++), linked and run ----------
# Generated from the header: `#define TERN_X_INIT[(arg)] { sizeof(tern_x), ... }` becomes
# `tern_x v = TERN_X_INIT[(1)];` plus a check that v.struct_size == sizeof v.
{
    echo '#include "tern.h"'
    echo '#include <stdio.h>'
    echo 'int main(void) {'
    echo '    int bad = 0;'
    grep -E '^#define TERN_[A-Z0-9_]+_INIT\b' "$header" | while read -r _ name rest; do
        macro=${name%%(*}
        type=$(printf '%s\n' "$rest" | sed -n -E 's/.*sizeof\((tern_[a-z0-9_]+)\).*/\1/p')
        [ -n "$type" ] || continue
        case $name in *\(*) init="$macro(1)" ;; *) init="$macro" ;; esac
        echo "    { $type v = $init; if (v.struct_size != sizeof v) { puts(\"$macro: wrong struct_size\"); bad = 1; } }"
    done
    echo '    if (tern_version() != TERN_VERSION_NUMBER) { puts("tern_version() != TERN_VERSION_NUMBER"); bad = 1; }'
    echo '    return bad;'
    echo '}'
} > "$tmp/init.c"
libdir=$(dirname "$lib")
for lang in c c++; do
    if [ $lang = c ]; then cc="$CC"; std=-std=c11; else cc="$CXX"; std=-std=c++17; fi
    if "$cc" $std $warn -I"$inc" -x $lang "$tmp/init.c" -x none "$lib" -o "$tmp/init" > "$tmp/log" 2>&1 &&
        LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/init" > "$tmp/log" 2>&1; then
        pass "INIT macros ($(grep -c 'struct_size !=' "$tmp/init.c")) and version, as $lang ($std)"
    else
        fail "INIT macros / version as $lang:"; sed 's/^/      /' "$tmp/log" >&2
    fi
done

# --- 2. exported symbols == expected list --------------------------------------------------
exported_functions "$lib" > "$tmp/exported.txt"
if [ ! -f "$expected_list" ]; then
    fail "missing $expected_list (create it with: $0 --update $lib)"
elif diff -u "$expected_list" "$tmp/exported.txt" > "$tmp/diff"; then
    pass "exported symbols match exported_symbols.txt ($(wc -l < "$tmp/exported.txt") functions)"
else
    fail "exported symbols differ from tests/abi/exported_symbols.txt ('-' = expected but missing, '+' = new):"
    sed 's/^/      /' "$tmp/diff" >&2
    echo "      (if the change is intended: $0 --update $lib)" >&2
fi
# Nothing but tern_* may be exported (no Rust internals, no unprefixed names).
if grep -v '^tern_' "$tmp/exported.txt" > "$tmp/foreign"; then
    fail "exported functions without the tern_ prefix:"; sed 's/^/      /' "$tmp/foreign" >&2
else
    pass "every exported function starts with tern_"
fi

# --- 3. header declarations == exported functions ------------------------------------------
# Function names that appear followed by '(' on lines that are not comments, not macro bodies.
grep -v -E '^[[:space:]]*(\*|/\*|//|#)' "$header" \
    | grep -o -E '\btern_[A-Za-z0-9_]+[[:space:]]*\(' | sed -E 's/[[:space:]]*\($//' \
    | LC_ALL=C sort -u > "$tmp/declared.txt"
if diff -u "$tmp/declared.txt" "$tmp/exported.txt" > "$tmp/diff2"; then
    pass "header declarations match the exported functions"
else
    fail "header declarations vs exported functions ('-' = declared, not exported; '+' = exported, not declared):"
    sed 's/^/      /' "$tmp/diff2" >&2
fi

# --- 3b. header namespace: every macro is TERN_*, every tag/typedef tern_* --------------------
# Unprefixed names (e.g. a Rust `pub const NEON` exported as `#define NEON`) collide with
# consumers' code. The double-underscore-free include guard TERN_H is also TERN_-prefixed.
{
    grep -E '^[[:space:]]*#[[:space:]]*define[[:space:]]+' "$header" \
        | sed -E 's/^[[:space:]]*#[[:space:]]*define[[:space:]]+([A-Za-z0-9_]+).*/\1/' \
        | grep -v '^TERN_' || true
    grep -o -E '\b(struct|enum|union)[[:space:]]+[A-Za-z_][A-Za-z0-9_]*' "$header" \
        | awk '{ print $2 }' | grep -v '^tern_' || true
    grep -o -E '^[[:space:]]*}[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;' "$header" \
        | sed -E 's/[};[:space:]]//g' | grep -v '^tern_' || true
    grep -E '^typedef .*;[[:space:]]*$' "$header" | sed -E 's/.*[[:space:]*]([A-Za-z_][A-Za-z0-9_]*);.*/\1/' \
        | grep -v '^tern_' || true
} | LC_ALL=C sort -u > "$tmp/unprefixed.txt"
if [ -s "$tmp/unprefixed.txt" ]; then
    fail "header defines names outside the TERN_/tern_ namespace:"
    sed 's/^/      /' "$tmp/unprefixed.txt" >&2
else
    pass "every header macro and type name is TERN_*/tern_*"
fi

# --- 4. soname -----------------------------------------------------------------------------
soname=$("$READELF" -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" = "$expected_soname" ]; then
    pass "soname is $soname"
else
    fail "soname is '$soname', expected '$expected_soname'"
fi

if [ "$failures" -ne 0 ]; then
    echo "tests/abi: $failures check(s) FAILED" >&2
    exit 1
fi
echo "tests/abi: all checks passed"
