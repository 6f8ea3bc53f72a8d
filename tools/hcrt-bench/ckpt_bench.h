/*
 * tools/hcrt-bench/ckpt_bench.h - what the two checkpoint benchmarks share: ckpt.c (one process) and
 * ckpt_partner.c (the partner level, under mpirun).
 */
#ifndef HCRT_BENCH_CKPT_H
#define HCRT_BENCH_CKPT_H

#include <stddef.h>
#include <sys/stat.h>

struct FTW;

/* Monotonic seconds. */
double hcrt_bench_now(void);
/* Median of v[0..n) (sorts v). */
double hcrt_bench_median(double *v, int n);
/* nftw() callback removing every entry (the benchmarks' scratch directories). */
int hcrt_bench_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw);

/* hcrt-bench ckpt --partner, with the options ckpt.c parsed. */
int hcrt_bench_ckpt_partner_main(size_t bytes, const char *dir, const char *local, const char *json, int repeat);

#endif /* HCRT_BENCH_CKPT_H */
