/*
 * tools/hcrt-train/report.c - what hcrt-train says: a progress line every --log-every steps (rank 0),
 * a final summary, and the --json report (rank 0) with the keys the training issue lists.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

static void shares_text(const train_job_t *j, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int r = 0; r < j->size && used + 24 < len; r++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", r ? "," : "", (long long)j->shares[r]);
}

void train_report_progress(train_job_t *j, int64_t step, double step_seconds)
{
    if (j->rank != 0)
        return;
    char shares[512];
    shares_text(j, shares, sizeof(shares));
    printf("step %5lld/%lld  loss %.4f  %8.0f samples/s  shares %s\n", (long long)(step + 1), (long long)j->o.steps,
           j->loss_curve[step], step_seconds > 0 ? (double)j->o.global_batch / step_seconds : 0.0, shares);
    fflush(stdout);
}

int train_report_final(train_job_t *j)
{
    char hash[17] = "";
    uint64_t h = 0;
    hcrt_status_t st = train_weights_xxh64(j, &h);
    if (st == HCRT_OK)
        snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)h);
    if (st != HCRT_OK) {
        fprintf(stderr, "hcrt-train: rank %d: reading the final weights: %s: %s\n", j->rank, hcrt_status_name(st),
                hcrt_last_error(j->ctx));
        return 1;
    }
    if (j->rank != 0)
        return 0;
    const int64_t steps = j->o.steps;
    const double rate = j->train_seconds > 0 ? (double)j->train_samples / j->train_seconds : 0;
    double solo_sum = 0;
    for (int r = 0; r < j->size && j->solo; r++)
        solo_sum += j->solo[r];
    const bool measured = j->o.measure_steps > 0 && solo_sum > 0;
    char shares[512];
    shares_text(j, shares, sizeof(shares));
    printf("hcrt-train: %lld steps of %lld samples on %d ranks%s: loss %.4f -> %.4f, %.0f samples/s, shares %s\n",
           (long long)steps, (long long)j->o.global_batch, j->size, j->o.exact ? " (exact)" : "",
           steps > 0 ? j->loss_curve[0] : 0.0, steps > 0 ? j->loss_curve[steps - 1] : 0.0, rate, shares);
    if (measured)
        printf("hcrt-train: efficiency %.3f (%.0f of %.0f samples/s, the ranks' solo sum); equal split %.0f "
               "samples/s (balanced is %.2fx)\n",
               rate / solo_sum, rate, solo_sum, j->equal_split, j->equal_split > 0 ? rate / j->equal_split : 0.0);
    printf("hcrt-train: weights_xxh64 %s\n", hash);
    fflush(stdout);
    if (j->o.json == NULL)
        return 0;

    json_t *o = json_object(), *curve = json_array(), *sh = json_array(), *solo = json_array(), *plans = json_array();
    for (int64_t s = 0; s < steps; s++) {
        json_array_append_new(curve, json_real(j->loss_curve[s]));
        json_t *plan = json_null();
        if (s < j->plans_cap && j->plans[s * j->size] >= 0) {
            plan = json_array();
            for (int r = 0; r < j->size; r++)
                json_array_append_new(plan, json_integer(j->plans[s * j->size + r]));
        }
        json_array_append_new(plans, plan);
    }
    for (int r = 0; r < j->size; r++) {
        json_array_append_new(sh, json_integer(j->shares[r]));
        json_array_append_new(solo, measured ? json_real(j->solo[r]) : json_null());
    }
    json_object_set_new(o, "steps", json_integer(steps));
    json_object_set_new(o, "global_batch", json_integer(j->o.global_batch));
    json_object_set_new(o, "micro_batch", json_integer(j->o.micro));
    json_object_set_new(o, "layers", json_string(j->o.layers_text));
    json_object_set_new(o, "world_size", json_integer(j->size));
    json_object_set_new(o, "loss_curve", curve);
    json_object_set_new(o, "final_loss", json_real(steps > 0 ? j->loss_curve[steps - 1] : 0.0));
    json_object_set_new(o, "weights_xxh64", json_string(hash));
    json_object_set_new(o, "samples_per_s", json_real(rate));
    json_object_set_new(o, "shares", sh);
    json_object_set_new(o, "plans", plans);
    json_object_set_new(o, "solo_samples_per_s", solo);
    json_object_set_new(o, "efficiency", measured ? json_real(rate / solo_sum) : json_null());
    json_object_set_new(o, "equal_split_samples_per_s", measured ? json_real(j->equal_split) : json_null());
    json_object_set_new(o, "exact", json_boolean(j->o.exact));
    json_object_set_new(o, "restored_from", j->restored_from >= 0 ? json_integer(j->restored_from) : json_null());
    int rc = json_dump_file(o, j->o.json, JSON_INDENT(2)) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "hcrt-train: cannot write %s\n", j->o.json);
    json_decref(o);
    return rc;
}
