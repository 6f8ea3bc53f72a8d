/*
 * tests/common/test.h - minimal assertions for hcrt's C tests.
 *
 * A failed CHECK prints the file, line, expression and (for hcrt calls) the status and last error, and
 * counts a failure; tests end with TEST_DONE(), which exits 1 when anything failed. TEST_SKIP exits 77
 * with the reason (only for what cannot run here, e.g. no GPU).
 */
#ifndef HCRT_TEST_H
#define HCRT_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include "hcrt/hcrt.h"

static int test_failures_ = 0;

#define CHECK(cond)                                                                                  \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                          \
            test_failures_++;                                                                        \
        }                                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                         \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                          \
            fprintf(stderr, __VA_ARGS__);                                                            \
            fputc('\n', stderr);                                                                     \
            test_failures_++;                                                                        \
        }                                                                                            \
    } while (0)

/* Like CHECK_MSG but stops the test: for set-up conditions everything after depends on. */
#define REQUIRE_MSG(cond, ...)                                                                                         \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "FATAL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

/* Expects an hcrt call to return `expected`; prints the status name and last error otherwise. */
#define CHECK_STATUS(ctx, call, expected)                                                            \
    do {                                                                                             \
        hcrt_status_t st_ = (call);                                                                  \
        if (st_ != (expected)) {                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s -> %s (expected %s): %s\n", __FILE__, __LINE__, #call,   \
                    hcrt_status_name(st_), hcrt_status_name(expected), hcrt_last_error(ctx));        \
            test_failures_++;                                                                        \
        }                                                                                            \
    } while (0)

#define CHECK_OK(ctx, call) CHECK_STATUS(ctx, call, HCRT_OK)

/* Like CHECK_OK but stops the test: for set-up steps everything after depends on. */
#define REQUIRE_OK(ctx, call)                                                                        \
    do {                                                                                             \
        hcrt_status_t st_ = (call);                                                                  \
        if (st_ != HCRT_OK) {                                                                        \
            fprintf(stderr, "FATAL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,                \
                    hcrt_status_name(st_), hcrt_last_error(ctx));                                    \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

#define TEST_SKIP(...)                                                                               \
    do {                                                                                             \
        fprintf(stderr, "SKIP: ");                                                                   \
        fprintf(stderr, __VA_ARGS__);                                                                \
        fputc('\n', stderr);                                                                         \
        exit(77);                                                                                    \
    } while (0)

#define TEST_DONE()                                                                                  \
    do {                                                                                             \
        if (test_failures_) {                                                                        \
            fprintf(stderr, "%d check(s) failed\n", test_failures_);                                 \
            return 1;                                                                                \
        }                                                                                            \
        return 0;                                                                                    \
    } while (0)

#endif /* HCRT_TEST_H */
