/*
 * runtime/checkpoint/hash_avx2.c - XXH3-64 compiled for AVX2, chosen at run time by verify.c.
 *
 * Debian's libxxhash is built for baseline x86-64 (SSE2) and hashes at about half the speed of its
 * AVX2 code path on the same machine; checksums are computed over every byte a checkpoint writes and
 * reads, so they would otherwise cost as much as the write itself. XXH3 gives the same value whatever
 * vector code computes it (a unit test compares the two).
 */
#include <stddef.h>
#include <stdint.h>

uint64_t hcrt__ckpt_hash_avx2(const void *data, size_t len);
int hcrt__ckpt_hash_avx2_usable(void);

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx2")
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

uint64_t hcrt__ckpt_hash_avx2(const void *data, size_t len) { return (uint64_t)XXH3_64bits(data, len); }

int hcrt__ckpt_hash_avx2_usable(void) { return __builtin_cpu_supports("avx2"); }
#else
uint64_t hcrt__ckpt_hash_avx2(const void *data, size_t len)
{
    (void)data;
    (void)len;
    return 0;
}

int hcrt__ckpt_hash_avx2_usable(void) { return 0; }
#endif
