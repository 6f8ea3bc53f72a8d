/*
 * collectives/comm.c - communicators: creation from the world, an MPI handle, split and dup; rank info.
 *
 * A communicator owns two private duplicates of its MPI communicator (collective traffic, and user
 * point-to-point traffic, so user tags never match collective messages), the communicator of its node
 * (MPI_Comm_split_type SHARED, optionally cut into fake nodes by HCRT_FAKE_NODES), the communicator of
 * the node leaders, and the node's shared window (shm.c). Creation is collective; the ranks exchange once
 * where each of them lives.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectives/coll.h"

static int parse_algo(const char *s)
{
    static const char *names[] = {"auto", "ring", "rd", "shm", "hier", "mpi"};
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (s != NULL && strcmp(s, names[i]) == 0)
            return i;
    return HCRT__ALGO_AUTO;
}

/* Fills this rank's entry of the exchanged table. */
static void fill_self(struct hcrt_comm *c, hcrt__rank_wire_t *w)
{
    memset(w, 0, sizeof(*w));
    /* Host names are at most 63 characters (HOST_NAME_MAX 64 with the NUL). */
    size_t hl = strnlen(c->ctx->hostname, sizeof(w->host) - 1);
    memcpy(w->host, c->ctx->hostname, hl);
    hcrt_device_t *dev = c->ctx->selected;
    const char *be = dev ? hcrt_device_backend(dev) : "cpu";
    memcpy(w->backend, be, strnlen(be, sizeof(w->backend) - 1));
    w->device_index = dev ? dev->index : 0;
    w->speed = dev ? dev->bprops.speed : 1.0;
    w->pid = (int64_t)getpid();
    hcrt__vendor_describe(c, w);
}

static hcrt_status_t mpi_err(struct hcrt_comm *c, const char *what)
{
    return hcrt__error(c->ctx, HCRT_ERR_MPI, "hcrt_comm: %s failed on rank %d", what, c->rank);
}

/* Sets up node, leaders, rank table and shared window of a communicator whose `mpi` is set. */
static hcrt_status_t setup_mpi(struct hcrt_comm *c)
{
    MPI_Comm real_node = MPI_COMM_NULL;
    /* Errors come back as codes, so a failure is reported by hcrt's exit policy, never by Open MPI's
     * silent abort. */
    if (MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return mpi_err(c, "MPI_Comm_set_errhandler");
    MPI_Comm_rank(c->mpi, &c->rank);
    MPI_Comm_size(c->mpi, &c->size);
    if (MPI_Comm_dup(c->mpi, &c->p2p) != MPI_SUCCESS)
        return mpi_err(c, "MPI_Comm_dup");
    if (MPI_Comm_set_errhandler(c->p2p, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return mpi_err(c, "MPI_Comm_set_errhandler");
    if (MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &real_node) != MPI_SUCCESS)
        return mpi_err(c, "MPI_Comm_split_type(SHARED)");
    int fake = (int)hcrt__config_int(c->ctx, "HCRT_FAKE_NODES");
    if (fake > 1) {
        int nr = 0, ns = 1;
        MPI_Comm_rank(real_node, &nr);
        MPI_Comm_size(real_node, &ns);
        int color = (int)((int64_t)nr * fake / ns);
        int rc = MPI_Comm_split(real_node, color, c->rank, &c->node);
        MPI_Comm_free(&real_node);
        if (rc != MPI_SUCCESS)
            return mpi_err(c, "MPI_Comm_split (HCRT_FAKE_NODES)");
    } else {
        c->node = real_node;
    }
    if (MPI_Comm_set_errhandler(c->node, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return mpi_err(c, "MPI_Comm_set_errhandler");
    MPI_Comm_rank(c->node, &c->node_rank);
    MPI_Comm_size(c->node, &c->node_size);
    if (MPI_Comm_split(c->mpi, c->node_rank == 0 ? 0 : MPI_UNDEFINED, c->rank, &c->leaders) != MPI_SUCCESS)
        return mpi_err(c, "MPI_Comm_split (leaders)");
    if (c->leaders != MPI_COMM_NULL && MPI_Comm_set_errhandler(c->leaders, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return mpi_err(c, "MPI_Comm_set_errhandler");

    hcrt__rank_wire_t self;
    fill_self(c, &self);
    int leader = c->rank;
    if (MPI_Allreduce(MPI_IN_PLACE, &leader, 1, MPI_INT, MPI_MIN, c->node) != MPI_SUCCESS)
        return mpi_err(c, "MPI_Allreduce (node leader)");
    self.node_leader = leader;
    c->info = calloc((size_t)c->size, sizeof(*c->info));
    c->node_of = calloc((size_t)c->size, sizeof(int));
    c->node_ranks = calloc((size_t)c->node_size, sizeof(int));
    if (c->info == NULL || c->node_of == NULL || c->node_ranks == NULL)
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "hcrt_comm: no memory for the rank table");
    if (MPI_Allgather(&self, (int)sizeof(self), MPI_BYTE, c->info, (int)sizeof(self), MPI_BYTE, c->mpi) !=
        MPI_SUCCESS)
        return mpi_err(c, "MPI_Allgather (rank table)");
    /* Node indices in order of each node's lowest rank. */
    c->node_count = 0;
    for (int r = 0; r < c->size; r++) {
        if (c->info[r].node_leader == r)
            c->node_of[r] = c->node_count++;
        else
            c->node_of[r] = c->node_of[c->info[r].node_leader];
    }
    c->node_index = c->node_of[c->rank];
    for (int r = 0, k = 0; r < c->size; r++)
        if (c->info[r].node_leader == leader)
            c->node_ranks[k++] = r;
    HCRT_CHECK(hcrt__shm_create(c));
    return hcrt__vendor_setup(c);
}

/* Creates a communicator over a duplicate of `base` (MPI_COMM_NULL: a one-rank communicator). */
static hcrt_status_t comm_create(hcrt_context_t *ctx, MPI_Comm base, hcrt_comm_t **out)
{
    hcrt_status_t status;
    struct hcrt_comm *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_comm: no memory");
    c->ctx = ctx;
    c->mpi = c->p2p = c->node = c->leaders = MPI_COMM_NULL;
    c->algo = parse_algo(hcrt__config_str(ctx, "HCRT_ALGO"));
    c->timeout = hcrt__config_double(ctx, "HCRT_TIMEOUT");
    c->check_calls = hcrt__config_bool(ctx, "HCRT_CHECK_CALLS");
    c->shm_map = hcrt__config_bool(ctx, "HCRT_SHM_MAP");
    c->chunk = (size_t)hcrt__config_int(ctx, "HCRT_CHUNK_SIZE");
    c->chunk &= ~(size_t)63; /* a multiple of every element size */
    if (base == MPI_COMM_NULL) {
        c->size = c->node_size = c->node_count = 1;
        c->info = calloc(1, sizeof(*c->info));
        c->node_of = calloc(1, sizeof(int));
        c->node_ranks = calloc(1, sizeof(int));
        if (c->info == NULL || c->node_of == NULL || c->node_ranks == NULL) {
            status = hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_comm: no memory");
            goto err;
        }
        fill_self(c, &c->info[0]);
        *out = c;
        return HCRT_OK;
    }
    if (MPI_Comm_dup(base, &c->mpi) != MPI_SUCCESS) {
        status = hcrt__error(ctx, HCRT_ERR_MPI, "hcrt_comm: MPI_Comm_dup failed");
        goto err;
    }
    HCRT_CHECK_GOTO(setup_mpi(c), status, err);
    *out = c;
    return HCRT_OK;
err:
    hcrt_comm_destroy(c);
    return status;
}

hcrt_status_t hcrt_comm_world(hcrt_context_t *ctx, hcrt_comm_t **comm)
{
    HCRT_CHECK_ARG(NULL, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, comm != NULL, "comm", "is NULL");
    return comm_create(ctx, ctx->world, comm);
}

hcrt_status_t hcrt_comm_from_mpi(hcrt_context_t *ctx, int64_t mpi_fint, hcrt_comm_t **comm)
{
    HCRT_CHECK_ARG(NULL, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, comm != NULL, "comm", "is NULL");
    if (ctx->world == MPI_COMM_NULL)
        return hcrt__error(ctx, HCRT_ERR_STATE, "hcrt_comm_from_mpi: the context was created without MPI");
    HCRT_CHECK_ARG(ctx, mpi_fint >= INT_MIN && mpi_fint <= INT_MAX, "mpi_fint", "is not a Fortran handle");
    MPI_Comm base = MPI_Comm_f2c((MPI_Fint)mpi_fint);
    HCRT_CHECK_ARG(ctx, base != MPI_COMM_NULL, "mpi_fint", "is MPI_COMM_NULL or not a communicator");
    return comm_create(ctx, base, comm);
}

hcrt_status_t hcrt_comm_split(hcrt_comm_t *comm, int color, int key, hcrt_comm_t **out)
{
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    HCRT_CHECK_ARG(comm->ctx, out != NULL, "out", "is NULL");
    HCRT_CHECK(hcrt__comm_usable(comm, __func__));
    if (comm->mpi == MPI_COMM_NULL) {
        if (color < 0) {
            *out = NULL;
            return HCRT_OK;
        }
        return comm_create(comm->ctx, MPI_COMM_NULL, out);
    }
    MPI_Comm part = MPI_COMM_NULL;
    if (MPI_Comm_split(comm->mpi, color < 0 ? MPI_UNDEFINED : color, key, &part) != MPI_SUCCESS)
        return hcrt__error(comm->ctx, HCRT_ERR_MPI, "hcrt_comm_split: MPI_Comm_split failed");
    if (part == MPI_COMM_NULL) {
        *out = NULL;
        return HCRT_OK;
    }
    hcrt_status_t status = comm_create(comm->ctx, part, out);
    MPI_Comm_free(&part);
    return status;
}

hcrt_status_t hcrt_comm_dup(hcrt_comm_t *comm, hcrt_comm_t **out)
{
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    HCRT_CHECK_ARG(comm->ctx, out != NULL, "out", "is NULL");
    HCRT_CHECK(hcrt__comm_usable(comm, __func__));
    return comm_create(comm->ctx, comm->mpi, out);
}

hcrt_status_t hcrt_comm_destroy(hcrt_comm_t *comm)
{
    if (comm == NULL)
        return HCRT_OK;
    while (comm->active != NULL)
        hcrt_request_free(comm->active);
    hcrt__vendor_destroy(comm);
    hcrt__shm_destroy(comm);
    hcrt__stage_free_all(comm);
    hcrt__pool_free_all(comm);
    MPI_Comm *comms[] = {&comm->leaders, &comm->node, &comm->p2p, &comm->mpi};
    for (size_t i = 0; i < sizeof(comms) / sizeof(comms[0]); i++)
        if (*comms[i] != MPI_COMM_NULL)
            MPI_Comm_free(comms[i]);
    free(comm->info);
    free(comm->node_of);
    free(comm->node_ranks);
    free(comm);
    return HCRT_OK;
}

hcrt_status_t hcrt_comm_rank(const hcrt_comm_t *comm, int *rank)
{
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    HCRT_CHECK_ARG(comm->ctx, rank != NULL, "rank", "is NULL");
    *rank = comm->rank;
    return HCRT_OK;
}

hcrt_status_t hcrt_comm_size(const hcrt_comm_t *comm, int *size)
{
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    HCRT_CHECK_ARG(comm->ctx, size != NULL, "size", "is NULL");
    *size = comm->size;
    return HCRT_OK;
}

hcrt_status_t hcrt_comm_node_count(const hcrt_comm_t *comm, int *count)
{
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    HCRT_CHECK_ARG(comm->ctx, count != NULL, "count", "is NULL");
    *count = comm->node_count;
    return HCRT_OK;
}

hcrt_status_t hcrt_comm_rank_info(const hcrt_comm_t *comm, int rank, hcrt_comm_rank_info_t *info)
{
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    HCRT_CHECK_ARG(comm->ctx, info != NULL, "info", "is NULL");
    HCRT_CHECK_ARG(comm->ctx, rank >= 0 && rank < comm->size, "rank", "is out of range");
    HCRT_CHECK_ARG(comm->ctx, info->struct_size >= offsetof(hcrt_comm_rank_info_t, rank) + sizeof(int),
                   "info->struct_size", "is too small (set it to sizeof(hcrt_comm_rank_info_t))");
    hcrt_comm_rank_info_t full = {0};
    const hcrt__rank_wire_t *w = &comm->info[rank];
    full.struct_size = info->struct_size;
    full.rank = rank;
    full.node = comm->node_of[rank];
    full.local_rank = 0;
    for (int r = 0; r < rank; r++)
        if (comm->node_of[r] == full.node)
            full.local_rank++;
    full.host = w->host;
    full.backend = w->backend;
    full.device_index = w->device_index;
    full.speed = w->speed;
    full.pid = w->pid;
    memcpy(info, &full, info->struct_size < sizeof(full) ? info->struct_size : sizeof(full));
    return HCRT_OK;
}
