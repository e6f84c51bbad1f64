#ifndef RYZE_CPOSTGRES_SHIM_H
#define RYZE_CPOSTGRES_SHIM_H
// Debian's libpq-dev puts the header under /usr/include/postgresql (pkg-config libpq).
#include <libpq-fe.h>
#endif
