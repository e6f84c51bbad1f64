// hiredis (Debian libhiredis-dev 0.14): the blocking client only. A redisContext is not
// thread-safe; RyzeRedis hands each one to one thread at a time.
#include <sys/time.h>
#include <hiredis/hiredis.h>
