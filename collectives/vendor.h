/*
 * collectives/vendor.h - what vendor.c (groups, setup, dispatch, failures) and vendor_build.c (the
 * schedules) share: the vendor groups of one communicator.
 *
 * The ranks of a communicator fall into groups: ranks whose context devices have the same vendor
 * collective library (same backend and vendor name; per node when the library reaches only one node)
 * form one group, every other rank is a group of its own. Groups are ordered by their lowest rank,
 * members by rank. Everything here is computed from the rank table, so every rank holds the same picture
 * and takes the same path for every call without asking the others.
 */
#ifndef HCRT_COLL_VENDOR_H
#define HCRT_COLL_VENDOR_H

#include "collectives/coll.h"

typedef struct hcrt__vgroup {
    int first; /* its members are members[first .. first + size) */
    int size;
    bool vendor; /* reduces with the vendor library (two ranks or more sharing one) */
} hcrt__vgroup_t;

/* Set-up state of the vendor communicator, the same on every rank once a call has decided it. */
typedef enum hcrt__vstate {
    HCRT__VSTATE_NEW,   /* not yet needed: set up by the first call that takes the vendor-group path */
    HCRT__VSTATE_READY, /* every vendor group has its communicator */
    HCRT__VSTATE_OFF,   /* setting up failed on some rank: every call takes hcrt's own path */
    HCRT__VSTATE_FAILED /* a vendor operation failed: calls return that failure */
} hcrt__vstate_t;

/* One node rank's flags in the exchange window: the last epoch whose partial it has put in its slot, and
 * the last one it has finished reading its peers' slots for. */
typedef struct hcrt__xline {
    _Atomic uint64_t ready, done;
    char pad[64 - 2 * sizeof(uint64_t)];
} hcrt__xline_t;

typedef struct hcrt__vendor {
    int ngroups;
    hcrt__vgroup_t *groups;
    int *members;          /* comm ranks, group after group */
    int *group_of;         /* group of each comm rank */
    int *index_of;         /* index of each comm rank within its group */
    size_t min_bytes;      /* calls below this size take hcrt's own path */
    size_t seg_elems_unit; /* segments are multiples of every vendor group's size */
    int g, j, m;           /* this rank's group, index in it, the group's size */
    hcrt_device_t *dev;    /* this rank's vendor device; NULL when its group does not use the library */
    MPI_Comm mpi;          /* a private dup of the communicator: set-up agreements */
    MPI_Comm gmpi;         /* this rank's vendor group (MPI_COMM_NULL outside one) */
    hcrt_backend_coll_t *coll;
    hcrt__vstate_t state;
    hcrt_status_t failure; /* HCRT__VSTATE_FAILED: the status calls return, with this text */
    char failure_text[512];
    /* The call running on the vendor-group path, for the deadline report: its name, number, schedule. */
    const char *step;
    uint64_t step_seq;
    const hcrt__sched_t *sched;
    /* Device memory of the vendor device for staging host buffers and padding, grown on demand. */
    void *dscratch;
    size_t dscratch_bytes;
    int maxm;                 /* the largest vendor group's size */
    hcrt__sched_t sched_keep; /* the schedule of every vendor-group call (its arrays reused) */
    bool sched_ready;
    /* The exchange window (set up with the vendor communicators when the node holds several ranks): each
     * node rank puts its partial of the segment being exchanged in its slot, and its node peers fold it
     * straight from there instead of receiving it over MPI. Slots alternate by epoch parity. */
    MPI_Win xwin;
    hcrt__xline_t **xline; /* per node rank */
    unsigned char **xslot; /* per node rank: two slots of xslot_bytes */
    size_t xslot_bytes;
    int *node_rank_of; /* node rank of each comm rank, -1 on another node */
    uint64_t xgen;     /* exchange epochs used so far: the same on every rank of a node */
} hcrt__vendor_t;

/* Vendor collective kinds of a HCRT__STEP_VCOLL step (its `value`). */
enum { HCRT__VCOLL_ALLREDUCE, HCRT__VCOLL_REDUCE_SCATTER, HCRT__VCOLL_ALLGATHER, HCRT__VCOLL_BROADCAST };

/* Device scratch of at least `bytes` on the vendor device (the old one is freed when it grows: only
 * between calls, after the stream was synchronised). */
hcrt_status_t hcrt__vendor_scratch(struct hcrt_comm *c, size_t bytes, void **out);

/* Builds the schedule of one vendor-group call (vendor_build.c). Host scratch comes from the pool into
 * blocks[] (*nblocks of them, at most HCRT__VENDOR_BLOCKS). */
#define HCRT__VENDOR_BLOCKS 4
hcrt_status_t hcrt__vendor_build(struct hcrt_comm *c, const hcrt__args_t *a, hcrt__sched_t *s, hcrt__block_t **blocks,
                                 int *nblocks);

#endif /* HCRT_COLL_VENDOR_H */
