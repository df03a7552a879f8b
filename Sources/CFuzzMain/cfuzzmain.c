#include "cfuzzmain.h"
#ifdef HUB_FUZZING
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t));
/* SwiftPM links executables against <target>_main; hand control to libFuzzer's driver. */
int HubFuzz_main(int argc, char **argv) { return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput); }
#endif
