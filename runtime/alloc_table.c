/*
 * runtime/alloc_table.c - every allocation hcrt made (hcrt_mem_alloc, hcrt_mem_alloc_host), so that a
 * pointer handed to a call can be checked against the device it is said to live on and against the size
 * of its allocation, before anything dereferences it.
 *
 * A sim or GPU pointer passed as host memory would be dereferenced by the host (SIGSEGV, or silently
 * wrong data), and a count larger than the buffer writes past its end; both are user errors that the
 * runtime can name, because it made the allocation. The table is consulted on every collective, so
 * lookups must cost next to nothing: a sorted array searched by bisection, read under a sequence lock
 * (no atomic read-modify-write, no lock on the reader side; docs/performance.md has the cost). Writers
 * (alloc and free) serialise on a mutex, bump the sequence number around each change, and never free an
 * array a reader may still be searching: a grown array replaces the old one, which is kept until the
 * context is finalised (arrays double, so the retired ones together are smaller than the live one).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

hcrt_status_t hcrt__alloc_table_init(hcrt_context_t *ctx)
{
    struct hcrt__alloc_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory");
    pthread_mutex_init(&t->lock, NULL);
    ctx->allocs = t;
    return HCRT_OK;
}

void hcrt__alloc_table_fini(hcrt_context_t *ctx)
{
    struct hcrt__alloc_table *t = ctx->allocs;
    if (t == NULL)
        return;
    hcrt__alloc_array_t *a = atomic_load_explicit(&t->arr, memory_order_relaxed);
    while (a != NULL) {
        hcrt__alloc_array_t *older = a->retired;
        free(a);
        a = older;
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
    ctx->allocs = NULL;
}

static void entry_copy(hcrt__alloc_entry_t *dst, const hcrt__alloc_entry_t *src)
{
    atomic_store_explicit(&dst->base, atomic_load_explicit(&src->base, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&dst->size, atomic_load_explicit(&src->size, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&dst->device, atomic_load_explicit(&src->device, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(&dst->host, atomic_load_explicit(&src->host, memory_order_relaxed), memory_order_relaxed);
}

/* The writer's window (mutex held): readers that overlap it see an odd or a changed sequence number and
 * search again. */
static void write_begin(struct hcrt__alloc_table *t)
{
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(struct hcrt__alloc_table *t)
{
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_release);
}

hcrt_status_t hcrt__alloc_add(hcrt_context_t *ctx, const void *ptr, size_t bytes, hcrt_device_t *device, bool host)
{
    struct hcrt__alloc_table *t = ctx->allocs;
    uintptr_t p = (uintptr_t)ptr;
    pthread_mutex_lock(&t->lock);
    hcrt__alloc_array_t *a = atomic_load_explicit(&t->arr, memory_order_relaxed);
    size_t n = a ? atomic_load_explicit(&a->n, memory_order_relaxed) : 0;
    if (a == NULL || n == a->cap) {
        /* Grown outside the window: the old array stays valid (and unchanged) for readers meanwhile. */
        size_t cap = a ? 2 * a->cap : 64;
        hcrt__alloc_array_t *b = malloc(sizeof(*b) + cap * sizeof(b->e[0]));
        if (b == NULL) {
            pthread_mutex_unlock(&t->lock);
            return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "out of host memory recording an allocation");
        }
        b->retired = a;
        b->cap = cap;
        for (size_t i = 0; i < n; i++)
            entry_copy(&b->e[i], &a->e[i]);
        atomic_store_explicit(&b->n, n, memory_order_relaxed);
        atomic_store_explicit(&t->arr, b, memory_order_release);
        a = b;
    }
    write_begin(t);
    size_t at = hcrt__alloc_upper_bound(a, n, p);
    for (size_t i = n; i > at; i--)
        entry_copy(&a->e[i], &a->e[i - 1]);
    atomic_store_explicit(&a->e[at].base, p, memory_order_relaxed);
    atomic_store_explicit(&a->e[at].size, bytes, memory_order_relaxed);
    atomic_store_explicit(&a->e[at].device, device, memory_order_relaxed);
    atomic_store_explicit(&a->e[at].host, host, memory_order_relaxed);
    atomic_store_explicit(&a->n, n + 1, memory_order_relaxed);
    write_end(t);
    pthread_mutex_unlock(&t->lock);
    return HCRT_OK;
}

void hcrt__alloc_remove(hcrt_context_t *ctx, const void *ptr)
{
    struct hcrt__alloc_table *t = ctx->allocs;
    uintptr_t p = (uintptr_t)ptr;
    pthread_mutex_lock(&t->lock);
    hcrt__alloc_array_t *a = atomic_load_explicit(&t->arr, memory_order_relaxed);
    size_t n = a ? atomic_load_explicit(&a->n, memory_order_relaxed) : 0;
    size_t at = hcrt__alloc_upper_bound(a, n, p);
    if (at > 0 && atomic_load_explicit(&a->e[at - 1].base, memory_order_relaxed) == p) {
        write_begin(t);
        for (size_t i = at - 1; i + 1 < n; i++)
            entry_copy(&a->e[i], &a->e[i + 1]);
        atomic_store_explicit(&a->n, n - 1, memory_order_relaxed);
        write_end(t);
    }
    pthread_mutex_unlock(&t->lock);
}

bool hcrt__alloc_find(const hcrt_context_t *ctx, const void *ptr, hcrt__alloc_info_t *info)
{
    return ctx->allocs != NULL && hcrt__alloc_lookup(ctx->allocs, (uintptr_t)ptr, info, NULL);
}

static void where(const hcrt_device_t *d, char *buf, size_t len)
{
    if (d == NULL)
        snprintf(buf, len, "NULL (host memory)");
    else
        snprintf(buf, len, "%s device %d", d->be->name, d->index);
}

/* The error of hcrt__mem_check, out of line: formatting belongs off the path every collective takes. */
hcrt_status_t hcrt__mem_refuse(const hcrt_context_t *ctx, const char *func, const char *name, const void *ptr,
                               size_t bytes, const hcrt_device_t *device, const hcrt__alloc_info_t *f,
                               bool wrong_device)
{
    char owner[96], said[96];
    where(f->device, owner, sizeof(owner));
    where(device, said, sizeof(said));
    if (wrong_device && f->host)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument '%s' is host memory (hcrt_mem_alloc_host of %s, %zu bytes) but "
                           "argument 'device' is %s; pass NULL or the host device",
                           func, name, owner, f->size, said);
    if (wrong_device)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument '%s' is memory of %s (hcrt_mem_alloc, %zu bytes) but argument 'device' is "
                           "%s; pass the device that owns it",
                           func, name, owner, f->size, said);
    return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                       "%s: argument '%s' needs %zu bytes from offset %zu of its allocation, which has %zu bytes "
                       "(on %s): the count is too large for the buffer",
                       func, name, bytes, (size_t)((uintptr_t)ptr - f->base), f->size, owner);
}
