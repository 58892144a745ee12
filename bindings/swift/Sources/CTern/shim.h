/* The C module for Swift: libtern's umbrella header, found through pkg-config's -I. */
#include <tern.h>
