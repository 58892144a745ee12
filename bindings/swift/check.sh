#!/bin/sh
# Checks the Swift package without a Swift toolchain (none is installable on the project's
# machines): the CTern module map and tern.h import with clang -fmodules, a C program using the
# module links and runs against the installed library, and every tern_* function the Swift
# sources call is declared in the header. Swift itself is NOT compiled or run here.
#
# usage: bindings/swift/check.sh PREFIX      (PREFIX = a `cmake --install` prefix)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=$1
CLANG=${CLANG:-clang}
command -v "$CLANG" > /dev/null || { echo "FAIL: clang not found (apt-get install clang)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/use.c" <<'C'
#pragma clang module import CTern /* what Swift's `import CTern` does; @import is Objective-C only */
#include <stdio.h>
int main(void) {
    tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_TQ2_0);
    size_t n = 0;
    if (tern_packed_size(&l, 2, 256, &n) != TERN_STATUS_OK || n != 2 * 66) return 2;
    if (tern_packed_size(&l, 2, 100, &n) == TERN_STATUS_OK || tern_last_error_message() == NULL) return 3;
    printf("CTern module: tern %s, version %s\n", tern_version_string(),
           tern_version() == TERN_VERSION_NUMBER ? "matches the header" : "MISMATCH");
    return tern_version() == TERN_VERSION_NUMBER ? 0 : 1;
}
C
"$CLANG" -fmodules -fmodules-cache-path="$tmp/cache" -Werror \
    -fmodule-map-file="$here/Sources/CTern/module.modulemap" -I"$prefix/include" \
    "$tmp/use.c" -L"$prefix/lib" -ltern -o "$tmp/use"
LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/use"
echo "ok:   module map + tern.h import with clang -fmodules; the C use of module CTern links and runs"

missing=0
for f in $(grep -ho 'tern_[a-z0-9_]*(' "$here/Sources/Tern/"*.swift "$here/Tests/TernTests/"*.swift | tr -d '(' | sort -u); do
    grep -Eq "(\b$f\(|struct $f \{)" "$prefix/include/tern.h" ||
        { echo "FAIL: Swift uses $f, which tern.h does not declare"; missing=1; }
done
[ $missing -eq 0 ] && echo "ok:   every tern_* function/struct the Swift sources use is declared in tern.h"
echo "note: Swift itself did not run (no Swift toolchain on this machine); Package.swift, Tern.swift"
echo "      and the XCTest need a machine with Swift (e.g. the swift machine kind): swift test"
exit $missing
