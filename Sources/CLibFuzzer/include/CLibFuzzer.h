#ifndef VTPBENCH_CLIBFUZZER_H
#define VTPBENCH_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): runs the fuzzing loop with
/// libFuzzer's own command line and calls `callback` once per input. vtpbench-fuzz calls it from
/// its own main, because SwiftPM gives every executable target a main of its own.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
