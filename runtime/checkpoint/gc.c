/*
 * runtime/checkpoint/gc.c - garbage collection after a commit: rank 0 trims the shared directory to the
 * newest `keep` committed steps (and removes partial ones), every rank trims its node-local directory
 * to the steps still committed in the shared one.
 *
 * The node-local directory is shared by every rank of the node, and the ranks leave a commit at
 * different moments: by the time the slowest rank collects after committing step s, a faster one may
 * already be writing step s+1 there. So a rank collecting after step s removes only steps up to s
 * (which no rank writes any more: s was committed after every rank's data of every earlier step was
 * durable), never a newer one.
 */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/checkpoint/ckpt_internal.h"
#include "runtime/fault/fault.h"

/* Between the manifest's removal and the data's: a kill here must leave a step that restore ignores. */
static void gc_fault_hook(const void *fault_ctx, int64_t removed)
{
    const hcrt_ckpt_t *ck = fault_ctx;
    (void)removed;
    if (ck != NULL)
        (void)hcrt__fault_check(ck->ctx, "ckpt", "gc", ck->gc_step); /* kill, hang, slow */
}

void hcrt__ckpt_install_gc_hook(void) { hcrt__ckpt_gc_hook = gc_fault_hook; }

void hcrt__ckpt_gc_shared(hcrt_ckpt_t *ck, int64_t committed)
{
    char err[1024];
    int removed = 0;
    if (hcrt__ckpt_gc_dir(ck->dir, ck->keep, committed, ck, true, &removed, err, sizeof(err)) != HCRT_OK)
        HCRT_WARN(CKPT_SUBSYS, "garbage collection of %s: %s", ck->dir, err);
    else if (removed)
        HCRT_DEBUG(CKPT_SUBSYS, "removed %d old or partial step(s) from %s", removed, ck->dir);
}

void hcrt__ckpt_gc_local(hcrt_ckpt_t *ck, int64_t committed)
{
    hcrt__ckpt_step_entry_t *shared = NULL, *local = NULL;
    size_t ns = 0, nl = 0;
    char err[1024];
    if (ck->local_dir == NULL)
        return;
    if (hcrt__ckpt_scan(ck->dir, &shared, &ns, err, sizeof(err)) != HCRT_OK ||
        hcrt__ckpt_scan(ck->local_dir, &local, &nl, err, sizeof(err)) != HCRT_OK) {
        HCRT_WARN(CKPT_SUBSYS, "garbage collection of %s: %s", ck->local_dir, err);
        goto out;
    }
    for (size_t i = 0; i < nl; i++) {
        bool keep = local[i].step > committed; /* a peer of this node may be writing it */
        int kept = 0;
        for (size_t k = 0; k < ns && !keep; k++) {
            if (!shared[k].committed)
                continue;
            if (++kept > ck->keep)
                break;
            keep = shared[k].step == local[i].step;
        }
        if (!keep && hcrt__ckpt_remove_step(ck->local_dir, local[i].step, NULL, true, err, sizeof(err)) != HCRT_OK)
            HCRT_WARN(CKPT_SUBSYS, "garbage collection of %s: %s", ck->local_dir, err);
    }
out:
    free(shared);
    free(local);
}
