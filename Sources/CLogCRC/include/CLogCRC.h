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

/// Whether this CPU can run logkit_crc32_clmul (PCLMULQDQ and SSE4.1);
/// always false off x86.
bool logkit_crc32_clmul_supported(void);

/// Continues a CRC-32 (IEEE 802.3, reflected, zlib's crc32) over `length`
/// bytes, which must be at least 64 and a multiple of 16. `state` is the
/// running register, not the final value: it is not inverted on the way in
/// or out. Only call it where logkit_crc32_clmul_supported() said yes.
uint32_t logkit_crc32_clmul(uint32_t state, const void *bytes, size_t length);

/// The same over the first `blocks` 16-byte blocks (1 to 16) of `first`
/// then `second` taken as one input, for short inputs: a record, whose
/// checksum skips its own field between header and payload. `firstLength`
/// must be a multiple of 8 and at most 16 * `blocks`.
uint32_t logkit_crc32_clmul_short_joined(uint32_t state, const void *first, size_t firstLength, const void *second, size_t blocks);

#endif
