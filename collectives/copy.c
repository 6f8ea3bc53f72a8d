/*
 * collectives/copy.c - copying results out to the caller's buffer with streaming stores.
 *
 * The last copy of a large shared-memory collective writes the caller's receive buffer, which nobody
 * reads soon. A plain memcpy first reads every destination line into the cache (write-allocate), so
 * the memory bus carries the buffer twice; streaming (non-temporal) stores write it once. What that is
 * worth on a memory-bound machine is in docs/performance.md ("Memory").
 */
#include <string.h>

#include "collectives/coll.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

void hcrt__copy_stream(void *dst, const void *src, size_t n)
{
#if defined(__x86_64__)
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n < 4096) {
        memcpy(d, s, n);
        return;
    }
    size_t head = (16 - ((uintptr_t)d & 15)) & 15;
    memcpy(d, s, head);
    d += head;
    s += head;
    n -= head;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
        __m128i e = _mm_loadu_si128((const __m128i *)(s + i + 48));
        _mm_stream_si128((__m128i *)(d + i), a);
        _mm_stream_si128((__m128i *)(d + i + 16), b);
        _mm_stream_si128((__m128i *)(d + i + 32), c);
        _mm_stream_si128((__m128i *)(d + i + 48), e);
    }
    memcpy(d + i, s + i, n - i);
    _mm_sfence();
#else
    memcpy(dst, src, n);
#endif
}
