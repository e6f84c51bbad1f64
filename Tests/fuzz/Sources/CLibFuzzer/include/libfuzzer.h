// libFuzzer's driver, from the runtime that `-sanitize=fuzzer` links. SwiftPM gives every
// executable target a `main` of its own (the module's entry point, aliased at link time), so
// libFuzzer's `main` is never linked: each target's `@main` calls this instead, with its callback.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

// What each target's `@main` runs: libFuzzer with the process's arguments (-max_total_time,
// -timeout, corpus directories...) and the target's callback; returns libFuzzer's exit status.
static inline int ryze_run_fuzzer(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}
