/*
 * tools/hcrt-train/replicas.c - the hash of the weights, and the check that every rank's replica of them
 * is the same (--check-replicas K).
 *
 * Every rank holds the whole model, and the sharded update makes every replica bitwise equal after each
 * step's allgather. A bit that flips in one rank's copy (a corrupted collective result, memory that went
 * bad) leaves that replica diverged: the next step computes that rank's gradient contribution from wrong
 * weights, and when the bit lies in the rank's own slice the wrong value spreads to every rank at the
 * allgather. Comparing an XXH64 of the weights across ranks before a step uses them catches the divergence
 * while it is still one rank's: the job ends with HCRT_ERR_CORRUPT (exit 122) before anything built on it
 * is committed, and a restart resumes from the last checkpoint, exact. Corruption inside one rank's own
 * compute is summed into every replica alike and cannot be seen this way (docs/fault-injection.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "train.h"

hcrt_status_t train_weights_xxh64(train_job_t *j, uint64_t *hash)
{
    const size_t bytes = j->model.nparams * sizeof(float);
    float *h = malloc(bytes);
    if (h == NULL)
        return HCRT_ERR_NO_MEMORY;
    hcrt_status_t st = hcrt_memcpy(j->host, h, j->dev, j->model.params, bytes);
    if (st == HCRT_OK)
        *hash = XXH64(h, bytes, 0);
    free(h);
    return st;
}

hcrt_status_t train_check_replicas(train_job_t *j, int64_t step)
{
    hcrt_status_t status = HCRT_OK;
    uint64_t mine = 0;
    uint64_t *all = calloc((size_t)j->size, sizeof(uint64_t));
    if (all == NULL)
        return HCRT_ERR_NO_MEMORY;
    TRAIN_TRY(j, train_weights_xxh64(j, &mine), out);
    TRAIN_TRY(j, hcrt_comm_allgather(j->comm, &mine, all, 1, HCRT_U64, NULL), out);
    /* The replica most ranks hold is taken for the right one (rank 0's on a tie), so that the message
     * names the odd rank out; either way the job ends, since nobody can tell which bits are right. */
    int best = 0, best_n = 0;
    for (int r = 0; r < j->size; r++) {
        int n = 0;
        for (int q = 0; q < j->size; q++)
            n += all[q] == all[r];
        if (n > best_n) {
            best = r;
            best_n = n;
        }
    }
    if (best_n == j->size)
        goto out;
    char what[768];
    int used = snprintf(what, sizeof(what), "hcrt-train: before step %lld the weights of rank(s)", (long long)step + 1);
    for (int r = 0; r < j->size && used < (int)sizeof(what) - 64; r++)
        if (all[r] != all[best])
            used += snprintf(what + used, sizeof(what) - (size_t)used, " %d (xxh64 %016llx)", r,
                             (unsigned long long)all[r]);
    snprintf(what + used, sizeof(what) - (size_t)used,
             " differ from the other ranks' (%016llx): a replica diverged (silent corruption); ending the job "
             "before it is saved, so that a restart resumes from the last checkpoint",
             (unsigned long long)all[best]);
    hcrt_abort(j->ctx, HCRT_ERR_CORRUPT, what);
out:
    free(all);
    return status;
}
