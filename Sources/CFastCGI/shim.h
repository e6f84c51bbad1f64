#ifndef RYZE_CFASTCGI_SHIM_H
#define RYZE_CFASTCGI_SHIM_H
#include <fcgiapp.h>
#endif
