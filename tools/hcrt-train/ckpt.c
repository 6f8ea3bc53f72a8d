/*
 * tools/hcrt-train/ckpt.c - hcrt-train's checkpoints (--ckpt-dir D --ckpt-every K).
 *
 * Registered: "params" (the flat parameters, sharded by the update slices, so every rank writes its
 * slice) and the optimizer state of the slices ("optim.momentum", or "optim.m" and "optim.v"), each with
 * the global shape [nparams]: a restore on another world size reshards them by global offset. The
 * metadata is JSON: the steps done, everything that fixes the sequence of global batches (seed, layers,
 * global batch, micro-batch size, exact), the optimizer's step count, the balancer's plan and the loss
 * curve so far. On start the newest committed step is restored automatically; a checkpoint of another
 * model or data sequence is refused rather than silently mixed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

#define META_MAX (4u << 20)

static const char *optim_name(hcrt_optimizer_t k) { return k == HCRT_OPTIM_ADAMW ? "adamw" : "sgd"; }

static hcrt_status_t register_slice(train_job_t *j, const char *name, float *ptr)
{
    const uint64_t shape[1] = {j->model.nparams};
    hcrt_ckpt_shard_t shard = {j->shard_real ? j->shard_off : 0, j->shard_real};
    hcrt_buffer_t buf = {j->dev, ptr, j->shard_real, HCRT_F32};
    return hcrt_ckpt_register(j->ck, name, buf, 1, shape, &shard);
}

static char *meta_text(train_job_t *j, int64_t steps_done)
{
    json_t *o = json_object(), *curve = json_array(), *shares = json_array();
    for (int64_t s = 0; s < steps_done; s++)
        json_array_append_new(curve, json_real(j->loss_curve[s]));
    for (int r = 0; r < j->size && j->shares; r++)
        json_array_append_new(shares, json_integer(j->shares[r]));
    json_object_set_new(o, "format", json_string("hcrt-train 1"));
    json_object_set_new(o, "steps_done", json_integer(steps_done));
    json_object_set_new(o, "seed", json_integer((json_int_t)j->o.seed));
    json_object_set_new(o, "layers", json_string(j->o.layers_text));
    json_object_set_new(o, "global_batch", json_integer(j->o.global_batch));
    json_object_set_new(o, "micro_batch", json_integer(j->o.micro));
    json_object_set_new(o, "exact", json_boolean(j->o.exact));
    json_object_set_new(o, "optimizer", json_string(optim_name(j->o.optim.kind)));
    json_object_set_new(o, "optimizer_steps", json_integer((json_int_t)j->adam_step));
    json_object_set_new(o, "world_size", json_integer(j->size));
    json_object_set_new(o, "shares", shares);
    json_object_set_new(o, "loss_curve", curve);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* Checks a restored checkpoint's metadata against this job and takes its state. */
static hcrt_status_t take_meta(train_job_t *j, const char *text, size_t len)
{
    json_error_t err;
    json_t *o = json_loadb(text, len, 0, &err);
    hcrt_status_t st = HCRT_ERR_CORRUPT;
    if (o == NULL) {
        fprintf(stderr, "hcrt-train: the checkpoint's metadata is not JSON: %s\n", err.text);
        return st;
    }
    const char *layers = json_string_value(json_object_get(o, "layers"));
    const char *optim = json_string_value(json_object_get(o, "optimizer"));
    json_int_t done = json_integer_value(json_object_get(o, "steps_done"));
    json_t *curve = json_object_get(o, "loss_curve");
    if (!layers || !optim || !json_is_integer(json_object_get(o, "steps_done")) || done < 0 || !json_is_array(curve)) {
        fprintf(stderr, "hcrt-train: the checkpoint's metadata lacks steps_done, layers, optimizer or loss_curve\n");
        goto out;
    }
    /* What fixes the sequence of global batches and the model must match; the rest may change. */
    st = HCRT_ERR_MISMATCH;
    if (strcmp(layers, j->o.layers_text) != 0 ||
        json_integer_value(json_object_get(o, "seed")) != (json_int_t)j->o.seed ||
        json_integer_value(json_object_get(o, "global_batch")) != j->o.global_batch ||
        json_integer_value(json_object_get(o, "micro_batch")) != j->o.micro ||
        json_boolean_value(json_object_get(o, "exact")) != j->o.exact || strcmp(optim, optim_name(j->o.optim.kind)) != 0) {
        fprintf(stderr, "hcrt-train: the checkpoint in %s is of another job (layers %s, seed %lld, global batch "
                "%lld, micro-batch %lld, exact %s, optimizer %s); this job has layers %s, seed %llu, global batch "
                "%lld, micro-batch %lld, exact %s, optimizer %s: use another --ckpt-dir or the same options\n",
                j->o.ckpt_dir, layers, (long long)json_integer_value(json_object_get(o, "seed")),
                (long long)json_integer_value(json_object_get(o, "global_batch")),
                (long long)json_integer_value(json_object_get(o, "micro_batch")),
                json_boolean_value(json_object_get(o, "exact")) ? "yes" : "no", optim, j->o.layers_text,
                (unsigned long long)j->o.seed, (long long)j->o.global_batch, (long long)j->o.micro,
                j->o.exact ? "yes" : "no", optim_name(j->o.optim.kind));
        goto out;
    }
    st = HCRT_OK;
    j->start_step = done < j->o.steps ? done : j->o.steps;
    j->adam_step = (uint64_t)json_integer_value(json_object_get(o, "optimizer_steps"));
    for (size_t i = 0; i < json_array_size(curve) && (int64_t)i < j->o.steps; i++)
        j->loss_curve[i] = json_real_value(json_array_get(curve, i));
    /* The plan carries over when the world did not change (a restart on the same ranks). */
    json_t *shares = json_object_get(o, "shares");
    if (json_integer_value(json_object_get(o, "world_size")) == j->size && json_array_size(shares) == (size_t)j->size &&
        j->o.balance != HCRT_BALANCE_OFF) {
        int64_t *plan = malloc((size_t)j->size * sizeof(int64_t));
        if (plan == NULL) {
            st = HCRT_ERR_NO_MEMORY;
            goto out;
        }
        for (int r = 0; r < j->size; r++)
            plan[r] = json_integer_value(json_array_get(shares, (size_t)r));
        st = hcrt_balancer_set_shares(j->bal, plan, (size_t)j->size);
        free(plan);
    }
out:
    json_decref(o);
    return st;
}

hcrt_status_t train_ckpt_open(train_job_t *j)
{
    hcrt_status_t status = HCRT_OK;
    hcrt_ckpt_params_t p;
    hcrt_ckpt_params_init(&p);
    p.dir = j->o.ckpt_dir;
    p.keep = j->o.ckpt_keep;
    TRAIN_TRY(j, hcrt_ckpt_open(j->ctx, j->comm, &p, &j->ck), err);
    TRAIN_TRY(j, register_slice(j, "params", j->model.params + j->shard_off), err);
    if (j->o.optim.kind == HCRT_OPTIM_ADAMW) {
        TRAIN_TRY(j, register_slice(j, "optim.m", j->state), err);
        TRAIN_TRY(j, register_slice(j, "optim.v", j->state ? j->state + j->shard_real : NULL), err);
    } else if (j->state_count) {
        TRAIN_TRY(j, register_slice(j, "optim.momentum", j->state), err);
    }

    size_t n = 0;
    TRAIN_TRY(j, hcrt_ckpt_list(j->ck, NULL, 0, &n), err);
    if (n == 0)
        return HCRT_OK;
    char *meta = malloc(META_MAX);
    size_t meta_len = 0;
    int64_t got = -1;
    if (meta == NULL)
        return HCRT_ERR_NO_MEMORY;
    status = hcrt_ckpt_restore(j->ck, HCRT_CKPT_LATEST, meta, META_MAX, &meta_len, &got);
    if (status == HCRT_OK && meta_len > META_MAX) {
        fprintf(stderr, "hcrt-train: the checkpoint's metadata is larger than %u bytes\n", META_MAX);
        status = HCRT_ERR_CORRUPT;
    }
    if (status == HCRT_OK)
        status = take_meta(j, meta, meta_len);
    free(meta);
    if (status == HCRT_ERR_MISMATCH && j->rank == 0)
        fprintf(stderr, "hcrt-train: the checkpoint in %s is of another job: its tensors differ from this "
                "job's (%s); use another --ckpt-dir or the same --layers and optimizer\n", j->o.ckpt_dir,
                hcrt_last_error(j->ctx));
    else if (status != HCRT_OK && status != HCRT_ERR_MISMATCH)
        fprintf(stderr, "hcrt-train: rank %d: restore from %s: %s: %s\n", j->rank, j->o.ckpt_dir,
                hcrt_status_name(status), hcrt_last_error(j->ctx));
    if (status != HCRT_OK)
        return status;
    /* Every rank restored its slice of the parameters: gather the whole model. */
    TRAIN_TRY(j, hcrt_comm_allgather(j->comm, HCRT_IN_PLACE, j->model.params, j->shard_len, HCRT_F32, j->dev), err);
    j->restored_from = got;
    if (j->rank == 0)
        printf("hcrt-train: restored step %lld from %s (%lld of %lld steps done)\n", (long long)got, j->o.ckpt_dir,
               (long long)j->start_step, (long long)j->o.steps);
    return HCRT_OK;
err:
    return status;
}

hcrt_status_t train_ckpt_save(train_job_t *j, int64_t steps_done)
{
    char *meta = meta_text(j, steps_done);
    if (meta == NULL)
        return HCRT_ERR_NO_MEMORY;
    hcrt_status_t st = hcrt_ckpt_save(j->ck, steps_done, meta, strlen(meta));
    free(meta);
    return st;
}

void train_ckpt_close(train_job_t *j)
{
    hcrt_status_t st = hcrt_ckpt_close(j->ck);
    if (st != HCRT_OK)
        fprintf(stderr, "hcrt-train: rank %d: the last checkpoint: %s: %s\n", j->rank, hcrt_status_name(st),
                hcrt_last_error(j->ctx));
    j->ck = NULL;
}
