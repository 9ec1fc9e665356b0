// The one piece of logkit written in C: Swift cannot emit the carry-less
// multiply (PCLMULQDQ) that makes CRC-32 several times faster than any table,
// so the folding kernel lives here and nothing else does. LogFormat's CRC32
// calls it when the CPU has the instructions and keeps its table for the
// rest, the fallback and the reference the kernel is tested against.

#ifndef CLOGCRC_H
#define CLOGCRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/// Whether this CPU can run the kernels below (PCLMULQDQ and SSE4.1);
/// always false off x86. Set before main.
extern bool logkit_crc32_clmul_ready;

static inline bool logkit_crc32_clmul_available(void) { return logkit_crc32_clmul_ready; }

/// Continues a CRC-32 (IEEE 802.3, reflected, zlib's crc32) over `length`
/// bytes, which must be at least 64 and a multiple of 16. `state` is the
/// running register, not the final value: it is not inverted on the way in
/// or out. Only call it where logkit_crc32_clmul_available() says yes.
uint32_t logkit_crc32_clmul(uint32_t state, const void *bytes, size_t length);

/// The CRC-32 (the final value, zlib's crc32 of the input from the start)
/// of the `length` bytes at `bytes` but the `gapLength` at `gapAt`: a
/// record's checksum, which skips its own field between header and payload.
/// What remains must be 16 to 256 bytes, and the gap at least 16 bytes in.
uint32_t logkit_crc32_clmul_skipping(const void *bytes, size_t length, size_t gapAt, size_t gapLength);

#endif
