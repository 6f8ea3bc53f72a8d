/*
 * collectives/check.c - checking mode (HCRT_CHECK_CALLS=1): every rank makes the same call.
 *
 * Before a collective runs, the ranks allgather a small record of the call (operation, count, dtype,
 * reduction, root, and a hash of v-operation counts) and compare it with rank 0's. Every rank sees the
 * same table, so every rank returns HCRT_ERR_MISMATCH with the same message naming the ranks and fields
 * that differ, instead of hanging or writing past a buffer. The exchange itself is bounded by the
 * deadline like any collective.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"

typedef struct record {
    int32_t coll, dtype, op, root;
    uint64_t count, vhash;
} record_t;

static uint64_t hash_sizes(uint64_t h, const size_t *v, int n)
{
    for (int i = 0; v != NULL && i < n; i++) {
        h ^= (uint64_t)v[i];
        h *= 1099511628211ull; /* FNV-1a step per value */
    }
    return h;
}

static void describe(char *buf, size_t len, const char *field, long long mine, long long ref, int rank)
{
    size_t used = strlen(buf);
    if (used + 96 < len)
        snprintf(buf + used, len - used, "%srank %d has %s=%lld where rank 0 has %lld", used ? "; " : "", rank,
                 field, mine, ref);
}

hcrt_status_t hcrt__check_call(struct hcrt_comm *c, const char *func, const hcrt__args_t *a, uint64_t seq)
{
    if (c->size == 1)
        return HCRT_OK;
    bool reduces = a->coll == HCRT__COLL_ALLREDUCE || a->coll == HCRT__COLL_REDUCE ||
                   a->coll == HCRT__COLL_REDUCE_SCATTER;
    bool rooted = a->coll == HCRT__COLL_REDUCE || a->coll == HCRT__COLL_BROADCAST ||
                  a->coll == HCRT__COLL_GATHER || a->coll == HCRT__COLL_SCATTER;
    record_t mine = {.coll = (int32_t)a->coll, .dtype = (int32_t)a->dtype, .op = reduces ? (int32_t)a->op : -1,
                     .root = rooted ? a->root : -1, .count = a->count,
                     .vhash = hash_sizes(hash_sizes(1469598103934665603ull, a->counts, c->size), a->displs,
                                         c->size)};
    if (a->coll == HCRT__COLL_ALLTOALLV) /* per-rank counts legitimately differ; their sums are checked by MPI */
        mine.vhash = 0;
    record_t *all = malloc((size_t)c->size * sizeof(*all));
    if (all == NULL)
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "%s: no memory for the call check", func);
    MPI_Request req;
    if (MPI_Iallgather(&mine, (int)sizeof(mine), MPI_BYTE, all, (int)sizeof(mine), MPI_BYTE, c->mpi, &req) !=
        MPI_SUCCESS) {
        free(all);
        return hcrt__error(c->ctx, HCRT_ERR_MPI, "%s: MPI_Iallgather of the call check failed", func);
    }
    hcrt__waiter_t w;
    unsigned spins = 0, polls = 0;
    hcrt__waiter_init(&w, hcrt__coll_name(a->coll), seq, 0, -1, NULL);
    for (;;) {
        int flag = 0;
        int rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            hcrt__comm_bury(c, &req); /* `all` stays allocated: MPI may still write it */
            return hcrt__error(c->ctx, HCRT_ERR_MPI, "%s: MPI_Test of the call check failed (rc %d)", func, rc);
        }
        if (flag)
            break;
        if ((++polls & 31) == 0) {
            hcrt_status_t st = hcrt__deadline_poll(c, &w);
            if (st != HCRT_OK) {
                hcrt__comm_bury(c, &req);
                return st;
            }
        }
        hcrt__poll_relax(&spins);
    }
    char diff[1536] = "";
    const record_t *ref = &all[0];
    for (int r = 1; r < c->size; r++) {
        const record_t *x = &all[r];
        if (x->coll != ref->coll) {
            size_t used = strlen(diff);
            if (used + 96 < sizeof(diff))
                snprintf(diff + used, sizeof(diff) - used, "%srank %d called %s where rank 0 called %s",
                         used ? "; " : "", r, hcrt__coll_name((hcrt__coll_t)x->coll),
                         hcrt__coll_name((hcrt__coll_t)ref->coll));
            continue;
        }
        if (x->count != ref->count)
            describe(diff, sizeof(diff), "count", (long long)x->count, (long long)ref->count, r);
        if (x->dtype != ref->dtype) {
            size_t used = strlen(diff);
            if (used + 96 < sizeof(diff))
                snprintf(diff + used, sizeof(diff) - used, "%srank %d has dtype=%s where rank 0 has %s",
                         used ? "; " : "", r, hcrt_dtype_name((hcrt_dtype_t)x->dtype),
                         hcrt_dtype_name((hcrt_dtype_t)ref->dtype));
        }
        if (x->op != ref->op) {
            size_t used = strlen(diff);
            if (used + 96 < sizeof(diff))
                snprintf(diff + used, sizeof(diff) - used, "%srank %d has op=%s where rank 0 has %s",
                         used ? "; " : "", r, hcrt_op_name((hcrt_op_t)x->op), hcrt_op_name((hcrt_op_t)ref->op));
        }
        if (x->root != ref->root)
            describe(diff, sizeof(diff), "root", x->root, ref->root, r);
        if (x->vhash != ref->vhash) {
            size_t used = strlen(diff);
            if (used + 96 < sizeof(diff))
                snprintf(diff + used, sizeof(diff) - used, "%srank %d has different counts/displs than rank 0",
                         used ? "; " : "", r);
        }
    }
    free(all);
    if (diff[0] == '\0')
        return HCRT_OK;
    return hcrt__error(c->ctx, HCRT_ERR_MISMATCH, "%s #%llu: mismatched call across ranks: %s", func,
                       (unsigned long long)seq, diff);
}
