/*
 * runtime/alloc_table.h - the read side of the allocation table (runtime/alloc_table.c), inline, because
 * every collective call looks up its buffers: the lookup and the check must cost a few nanoseconds
 * (docs/performance.md, "What the safety checks cost"). Included by runtime/internal.h, after the
 * context and device structs it reads.
 */
#ifndef HCRT_RUNTIME_ALLOC_TABLE_H
#define HCRT_RUNTIME_ALLOC_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fields are atomics read with relaxed loads: a reader may race with a writer, and the sequence number
 * tells it to retry, but the race itself must not be undefined behaviour. */
typedef struct hcrt__alloc_entry {
    _Atomic uintptr_t base;
    _Atomic size_t size;
    _Atomic(hcrt_device_t *) device;
    _Atomic bool host; /* host memory (hcrt_mem_alloc_host), pinned for `device`'s backend */
} hcrt__alloc_entry_t;

typedef struct hcrt__alloc_array {
    struct hcrt__alloc_array *retired; /* the array this one replaced */
    size_t cap;
    _Atomic size_t n;
    hcrt__alloc_entry_t e[];
} hcrt__alloc_array_t;

struct hcrt__alloc_table {
    pthread_mutex_t lock; /* writers */
    _Atomic unsigned seq; /* odd while a writer changes the array */
    _Atomic(hcrt__alloc_array_t *) arr;
};

/* What the table knows of one allocation. */
typedef struct hcrt__alloc_info {
    uintptr_t base;
    size_t size;
    hcrt_device_t *device;
    bool host;
} hcrt__alloc_info_t;

/* The allocation that holds ptr, if hcrt made one. */
bool hcrt__alloc_find(const hcrt_context_t *ctx, const void *ptr, hcrt__alloc_info_t *info);

/* Index of the first entry whose base is above p (entries [0, result) start at or below p). */
static inline size_t hcrt__alloc_upper_bound(const hcrt__alloc_array_t *a, size_t n, uintptr_t p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (atomic_load_explicit(&a->e[mid].base, memory_order_relaxed) <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * The last answer of a lookup, reusable while the table has not changed: the range [lo, hi) around the
 * pointer that holds one allocation (hit) or none (the gap between two), and the table's sequence number
 * when it was read. For a caller that looks up the same buffers again and again from one thread (a
 * communicator: one thread at a time), this turns the bisection into two compares.
 */
typedef struct hcrt__alloc_cache {
    unsigned seq;
    uintptr_t lo, hi; /* lo == hi (a zeroed cache): empty, matches no pointer */
    bool hit;
    hcrt__alloc_info_t info;
} hcrt__alloc_cache_t;

/* A consistent copy of the allocation holding p, if any; with `cache`, answered from it when it still
 * holds, and refilled otherwise. */
static inline bool hcrt__alloc_lookup(const struct hcrt__alloc_table *t, uintptr_t p, hcrt__alloc_info_t *out,
                                      hcrt__alloc_cache_t *cache)
{
    for (;;) {
        unsigned s = atomic_load_explicit(&t->seq, memory_order_acquire);
        if (s & 1)
            continue; /* a writer is at work: a few instructions */
        if (cache != NULL && cache->seq == s && p - cache->lo < cache->hi - cache->lo) {
            *out = cache->info;
            return cache->hit;
        }
        const hcrt__alloc_array_t *a = atomic_load_explicit(&t->arr, memory_order_acquire);
        size_t n = a ? atomic_load_explicit(&a->n, memory_order_relaxed) : 0;
        bool hit = false;
        uintptr_t lo = 0, hi = UINTPTR_MAX;
        if (n > 0) {
            n = n < a->cap ? n : a->cap;
            size_t at = hcrt__alloc_upper_bound(a, n, p);
            if (at < n)
                hi = atomic_load_explicit(&a->e[at].base, memory_order_relaxed);
            if (at > 0) {
                const hcrt__alloc_entry_t *e = &a->e[at - 1];
                out->base = atomic_load_explicit(&e->base, memory_order_relaxed);
                out->size = atomic_load_explicit(&e->size, memory_order_relaxed);
                out->device = atomic_load_explicit(&e->device, memory_order_relaxed);
                out->host = atomic_load_explicit(&e->host, memory_order_relaxed);
                hit = p - out->base < out->size;
                lo = out->base + (hit ? 0 : out->size);
                if (hit)
                    hi = out->base + out->size;
            }
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&t->seq, memory_order_relaxed) != s)
            continue;
        if (cache != NULL && lo <= p && p < hi) {
            cache->seq = s;
            cache->lo = lo;
            cache->hi = hi;
            cache->hit = hit;
            cache->info = *out;
        }
        return hit;
    }
}

/* The error of hcrt__mem_check (alloc_table.c): formatting belongs off the path every collective takes. */
__attribute__((cold)) hcrt_status_t hcrt__mem_refuse(const hcrt_context_t *ctx, const char *func, const char *name,
                                                     const void *ptr, size_t bytes, const hcrt_device_t *device,
                                                     const hcrt__alloc_info_t *f, bool wrong_device);

/*
 * Checks `bytes` at ptr, argument `name` of `func`, said to be memory of `device` (NULL: host). When ptr
 * lies in an allocation hcrt made, that allocation must belong to the device (host memory for host
 * devices; `kernel`: also any device, as registered host memory) and hold the bytes; otherwise
 * HCRT_ERR_INVALID_ARG naming the argument and the owning device or the allocation's size. Pointers hcrt
 * did not allocate pass. `cache` may be NULL; a cache must not be shared between threads.
 */
static inline hcrt_status_t hcrt__mem_check_cached(const hcrt_context_t *ctx, hcrt__alloc_cache_t *cache,
                                                   const char *func, const char *name, const void *ptr, size_t bytes,
                                                   const hcrt_device_t *device, bool kernel)
{
    const struct hcrt__alloc_table *t = ctx->allocs;
    hcrt__alloc_info_t f;
    if (ptr == NULL || t == NULL || !hcrt__alloc_lookup(t, (uintptr_t)ptr, &f, cache))
        return HCRT_OK;
    bool said_host = device == NULL || hcrt__device_is_host(device);
    /* Pinned host memory is host memory; kernels also take it once registered (hcrt_host_register). */
    bool wrong = f.host ? !said_host && !kernel : f.device != device && !(said_host && hcrt__device_is_host(f.device));
    if (wrong || bytes > f.size - ((uintptr_t)ptr - f.base))
        return hcrt__mem_refuse(ctx, func, name, ptr, bytes, device, &f, wrong);
    return HCRT_OK;
}

static inline hcrt_status_t hcrt__mem_check(const hcrt_context_t *ctx, const char *func, const char *name,
                                            const void *ptr, size_t bytes, const hcrt_device_t *device, bool kernel)
{
    return hcrt__mem_check_cached(ctx, NULL, func, name, ptr, bytes, device, kernel);
}

#endif /* HCRT_RUNTIME_ALLOC_TABLE_H */
