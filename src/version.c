/* Library version, for bindings that load libvigil at run time and must
 * check it matches the header they were written against. */
#include "vigil.h"

unsigned vigil_version(void) { return VIGIL_VERSION_HEX; }

const char *vigil_version_string(void) { return VIGIL_VERSION_STRING; }
