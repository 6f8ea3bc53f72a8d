/*
 * kernels/host_gemm_kernels.h - the register-tile kernels of the host gemm (internal to kernels/).
 *
 * A kernel computes one tile of MR x NR elements of c from a packed panel of a (kc x MR: element (r, p) at
 * a[p * MR + r]) and kc rows of NR elements of b (row p at b + p * ldb, either b itself or a packed panel
 * with ldb == NR). Each element is the chain acc = fma(a, b, acc) over p ascending, starting from +0
 * (win NULL) or from the partial sums at win (row stride ldw) left by an earlier block of k. With final
 * false the raw sums go to out (row stride ldo); with final true out receives alpha * acc, plus
 * beta * out rounded separately when beta != 0. Every kernel does exactly these operations per element,
 * so they all give the same bits; they differ only in tile shape and vector width. `nt` asks for
 * non-temporal stores of the final values where beta == 0 and the row is aligned for them (a c larger
 * than the caches, written once: they save reading every line of it before writing it); the caller then
 * ends the gemm with a store fence.
 */
#ifndef HCRT_HOST_GEMM_KERNELS_H
#define HCRT_HOST_GEMM_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

typedef void (*hcrt__gemm_tile_fn)(size_t kc, const float *a, const float *b, size_t ldb, const float *win, size_t ldw,
                                   float *out, size_t ldo, bool final, float alpha, float beta, bool nt);

/* 6 x 64 with AVX-512F (24 accumulators in zmm registers). */
void hcrt__gemm_tile_avx512(size_t kc, const float *a, const float *b, size_t ldb, const float *win, size_t ldw,
                            float *out, size_t ldo, bool final, float alpha, float beta, bool nt);
/* 6 x 16 with AVX2 and FMA (12 accumulators in ymm registers). */
void hcrt__gemm_tile_avx2(size_t kc, const float *a, const float *b, size_t ldb, const float *win, size_t ldw,
                          float *out, size_t ldo, bool final, float alpha, float beta, bool nt);

/* Packs op(b) = the transpose of a stored f32 block for the tile kernels: row j < cv of the block (at
 * src + j * ld, kc floats) becomes column j of dst (dst[p * nr + j]). Data movement only, so it serves any
 * kernel: 16 x 16 blocks are transposed in registers, the edges element by element. Columns cv..nr of dst
 * are left to the caller. AVX-512F. */
void hcrt__gemm_pack_bt_avx512(float *dst, size_t nr, const float *src, size_t ld, size_t kc, size_t cv);

/* Orders the non-temporal stores before whatever the thread does next (sfence; nothing off x86). */
void hcrt__gemm_store_fence(void);

/* Whether the CPU and OS run them (AVX-512F; AVX2 and FMA). */
bool hcrt__gemm_have_avx512(void);
bool hcrt__gemm_have_avx2(void);

#define HCRT__GEMM_AVX512_MR 6
#define HCRT__GEMM_AVX512_NR 64
#define HCRT__GEMM_AVX2_MR   6
#define HCRT__GEMM_AVX2_NR   16

#endif /* HCRT_HOST_GEMM_KERNELS_H */
