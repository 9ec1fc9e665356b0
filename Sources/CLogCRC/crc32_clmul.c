// CRC-32 by carry-less multiplication: the method of Gopal, Ozturk et al.,
// "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction"
// (Intel, 2009), as zlib's and Chromium's crc32_simd use it. See CLogCRC.h for
// why this is C. The target attribute confines the instructions to these
// functions, so the package builds with no special flags and runs anywhere;
// Swift calls the kernel only after the CPU check.

#include "CLogCRC.h"

#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>
#include <immintrin.h>

bool logkit_crc32_clmul_ready;

// Before main, so that each call site tests a plain load: Swift guards a
// lazily computed static with a once-check on every use.
__attribute__((constructor)) static void detect(void) {
    unsigned int eax, ebx, ecx, edx;
    logkit_crc32_clmul_ready = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_PCLMUL) && (ecx & bit_SSE4_1);
}

// The constants are x^n mod P for the reflected polynomial P = 0x104C11DB7,
// bit-reflected and shifted left by one (the paper's appendix): folding a
// 128-bit lane forward by d bits multiplies its halves by x^(d+32) and
// x^(d-32) mod P.
#define PAIR(low, high) _mm_set_epi64x((long long)(high), (long long)(low))

__attribute__((target("sse4.1,pclmul")))
static inline __m128i fold(__m128i lane, __m128i constants, __m128i next) {
    __m128i low = _mm_clmulepi64_si128(lane, constants, 0x00);
    __m128i high = _mm_clmulepi64_si128(lane, constants, 0x11);
    return _mm_xor_si128(_mm_xor_si128(low, high), next);
}

// The register for a lane that all the input has been folded into.
__attribute__((target("sse4.1,pclmul")))
static inline uint32_t reduce(__m128i x) {
    const __m128i by128 = PAIR(0x1751997d0, 0x0ccaa009e); // x^160, x^96
    const __m128i by64 = PAIR(0x163cd6124, 0);            // x^64
    // P and its Barrett quotient floor(x^64 / P), both reflected.
    const __m128i barrett = PAIR(0x1db710641, 0x1f7011641);
    const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);

    // 128 bits to 64: the low half times x^96, into the high half; then the
    // low 32 bits of that times x^64, into the rest.
    x = _mm_xor_si128(_mm_srli_si128(x, 8), _mm_clmulepi64_si128(x, by128, 0x10));
    x = _mm_xor_si128(_mm_srli_si128(x, 4), _mm_clmulepi64_si128(_mm_and_si128(x, low32), by64, 0x00));

    // Barrett reduction of the 64 bits to the 32-bit remainder.
    __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x, low32), barrett, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), barrett, 0x00);
    return (uint32_t)_mm_extract_epi32(_mm_xor_si128(x, t), 1);
}

__attribute__((target("sse4.1,pclmul")))
uint32_t logkit_crc32_clmul(uint32_t state, const void *start, size_t length) {
    const uint8_t *bytes = start;
    const __m128i by512 = PAIR(0x154442bd4, 0x1c6e41596); // x^544, x^480
    const __m128i by128 = PAIR(0x1751997d0, 0x0ccaa009e); // x^160, x^96

    // Four lanes, folded 64 bytes at a time: four independent multiplication
    // chains keep the multiplier busy despite its latency.
    __m128i a = _mm_loadu_si128((const __m128i *)(bytes + 0));
    __m128i b = _mm_loadu_si128((const __m128i *)(bytes + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(bytes + 32));
    __m128i d = _mm_loadu_si128((const __m128i *)(bytes + 48));
    a = _mm_xor_si128(a, _mm_cvtsi32_si128((int)state));
    bytes += 64;
    length -= 64;
    while (length >= 64) {
        a = fold(a, by512, _mm_loadu_si128((const __m128i *)(bytes + 0)));
        b = fold(b, by512, _mm_loadu_si128((const __m128i *)(bytes + 16)));
        c = fold(c, by512, _mm_loadu_si128((const __m128i *)(bytes + 32)));
        d = fold(d, by512, _mm_loadu_si128((const __m128i *)(bytes + 48)));
        bytes += 64;
        length -= 64;
    }

    // The four lanes into one, then the remaining 16-byte blocks into it.
    __m128i x = fold(a, by128, b);
    x = fold(x, by128, c);
    x = fold(x, by128, d);
    while (length >= 16) {
        x = fold(x, by128, _mm_loadu_si128((const __m128i *)bytes));
        bytes += 16;
        length -= 16;
    }

    return reduce(x);
}

// Folding a lane forward by k blocks of 128 bits, k = 1...15: x^(128k+32)
// and x^(128k-32) mod P, in the representation above, low half first.
static const uint64_t forward[15][2] = {
    {0x1751997d0, 0x0ccaa009e}, {0x0f1da05aa, 0x15a546366}, {0x03db1ecdc, 0x174359406},
    {0x154442bd4, 0x1c6e41596}, {0x1c7569e54, 0x0ae0b5394}, {0x0df068dc2, 0x18cb44e58},
    {0x1ea89367e, 0x1d7cfc6ac}, {0x1e88ef372, 0x14a7fe880}, {0x1fdc60a7c, 0x03f41287a},
    {0x0e3543be0, 0x14b57d3f0}, {0x1816ab61c, 0x10aae2566}, {0x1821d8bc0, 0x12e958ac4},
    {0x1b35adb0e, 0x1e7146aac}, {0x19159bb02, 0x125f17dfc}, {0x1db06f64c, 0x1c47d2a9c},
};

// Adds `block`, with `ahead` blocks after it, to the sum of all blocks
// folded to the last one's place.
__attribute__((target("sse4.1,pclmul")))
static inline void absorb(__m128i block, size_t ahead, __m128i *low, __m128i *high) {
    __m128i constants = _mm_loadu_si128((const __m128i *)forward[ahead - 1]);
    *low = _mm_xor_si128(*low, _mm_clmulepi64_si128(block, constants, 0x00));
    *high = _mm_xor_si128(*high, _mm_clmulepi64_si128(block, constants, 0x11));
}

// The input is taken as if k zero bytes (k = 0...15) stood in front of it,
// so that it ends on a block boundary and no byte is left for a table. Zero
// bytes still move the register, so each k starts from the register that k
// zero bytes turn into the usual 0xFFFFFFFF: the standard start run k steps
// backwards (a byte step is invertible; the top byte of a table entry names
// the byte that chose it).
static const uint32_t padded_start[16] = {
    0xffffffff, 0xf0958fd9, 0x9a1c9d90, 0xa32e2681, 0x9226f562, 0xf47bf9cc, 0xaf4c9d16, 0x46865aa9,
    0xefe4d0af, 0x31c08543, 0xae0bacae, 0xdac6e4e8, 0xa65c386b, 0xe06f0ca5, 0xbae5bb0a, 0x358d0ff4,
};

// Read 16 bytes at 16 - k, a shuffle mask that moves bytes k places up and
// zeroes the k below them.
static const uint8_t shift_up[32] = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
};

// Read 16 bytes at 16 - m, a mask of the first m bytes.
static const uint8_t leading[32] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

// Block `at` / 16 (one or later) of the input with the pad in front and the
// gap taken out: `second` is where block one starts in the input; a block
// before the gap starts `at - 16` after it, one after the gap `gapLength`
// further on, and a block the gap splits is blended from both.
__attribute__((target("sse4.1,pclmul")))
static inline __m128i block_at(const uint8_t *second, size_t gap, size_t gapLength, size_t at) {
    const uint8_t *before = second + (at - 16);
    if (at + 16 <= gap) return _mm_loadu_si128((const __m128i *)before);
    if (at >= gap) return _mm_loadu_si128((const __m128i *)(before + gapLength));
    return _mm_blendv_epi8(
        _mm_loadu_si128((const __m128i *)(before + gapLength)), _mm_loadu_si128((const __m128i *)before),
        _mm_loadu_si128((const __m128i *)(leading + 16 - (gap - at))));
}

// A record is a few blocks: the four-lane kernel would spend more time
// merging its lanes than folding. Here every block is folded straight to the
// last block's place with its own constant; the multiplications do not wait
// for each other, so the whole costs about one multiplication's latency and
// the reduction, where a chain of folds costs one latency per block. Every
// block is one load from the record where it lies, and, where the skipped
// field falls inside one, two loads and a blend; nothing is copied.
__attribute__((target("sse4.1,pclmul")))
uint32_t logkit_crc32_clmul_skipping(const void *start, size_t length, size_t gapAt, size_t gapLength) {
    const uint8_t *bytes = start;
    size_t total = length - gapLength;
    size_t blocks = (total + 15) >> 4;
    size_t pad = (blocks << 4) - total;
    // Where the gap is, counted with the pad, and where block one starts.
    size_t gap = gapAt + pad;
    const uint8_t *second = bytes + (16 - pad);

    // The first block, never split (the gap is 16 bytes in or more), is the
    // only one that holds pad, and takes the running register.
    __m128i first = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)bytes), _mm_loadu_si128((const __m128i *)(shift_up + 16 - pad)));
    first = _mm_xor_si128(first, _mm_cvtsi32_si128((int)padded_start[pad]));
    if (blocks == 1) return ~reduce(first);
    __m128i low = _mm_setzero_si128();
    __m128i high = _mm_setzero_si128();
    absorb(first, blocks - 1, &low, &high);
    for (size_t i = 1; i < blocks - 1; i++) {
        absorb(block_at(second, gap, gapLength, i << 4), blocks - 1 - i, &low, &high);
    }
    __m128i last = block_at(second, gap, gapLength, (blocks - 1) << 4);
    return ~reduce(_mm_xor_si128(_mm_xor_si128(low, high), last));
}

#else

bool logkit_crc32_clmul_ready = false;

// Never called: the check above says no. It exists so that the Swift side
// links on every architecture without a conditional of its own.
uint32_t logkit_crc32_clmul(uint32_t state, const void *bytes, size_t length) {
    __builtin_trap();
}

uint32_t logkit_crc32_clmul_skipping(const void *bytes, size_t length, size_t gapAt, size_t gapLength) {
    __builtin_trap();
}

#endif
