// libFuzzer's driver entry (compiler-rt FuzzerInterface.h / FuzzerDriver.cpp): runs the fuzzing
// loop with the given callback, parsing libFuzzer's flags from argv.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));
