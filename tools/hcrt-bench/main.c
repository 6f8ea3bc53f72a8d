/*
 * tools/hcrt-bench/main.c - hcrt-bench: collective benchmarks (coll.c), as `hcrt-bench ckpt` the
 * checkpoint benchmark (ckpt.c, built when present), as `hcrt-bench gemm` the compute extension's gemm
 * beside OpenBLAS (gemm.c), and as `hcrt-bench exact` exact mode's cost in a training step (exact.c).
 */
#include <stdio.h>
#include <string.h>

int hcrt_bench_coll_main(int argc, char **argv);
int hcrt_bench_gemm_main(int argc, char **argv);
int hcrt_bench_exact_main(int argc, char **argv);
#ifdef HCRT_BENCH_HAVE_CKPT
int hcrt_bench_ckpt_main(int argc, char **argv);
#endif

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "ckpt") == 0) {
#ifdef HCRT_BENCH_HAVE_CKPT
        return hcrt_bench_ckpt_main(argc - 1, argv + 1);
#else
        fprintf(stderr, "hcrt-bench ckpt: not built (tools/hcrt-bench/ckpt.c is missing from this build)\n");
        return 1;
#endif
    }
    if (argc > 1 && strcmp(argv[1], "gemm") == 0)
        return hcrt_bench_gemm_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "exact") == 0)
        return hcrt_bench_exact_main(argc - 1, argv + 1);
    return hcrt_bench_coll_main(argc, argv);
}
