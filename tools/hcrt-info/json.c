/*
 * tools/hcrt-info/json.c - the report as one JSON object (keys version, init_error, backends, topology,
 * mpi, config, plus selected and ranks), for scripts and tests.
 */
#include <jansson.h>
#include <stdio.h>

#include "report.h"

/* jansson's setters take over the reference. A NULL value (only when out of memory) is refused and the
 * key left out, which is all a diagnostics tool can do then. */
static void put(json_t *obj, const char *key, json_t *value)
{
    json_object_set_new(obj, key, value);
}

static json_t *str_or_empty(const char *s)
{
    return json_string(s ? s : "");
}

static json_t *device_json(const hcrt_device_props_t *d)
{
    char caps[160];
    json_t *o = json_object();
    put(o, "backend", str_or_empty(d->backend));
    put(o, "index", json_integer(d->index));
    put(o, "global_index", json_integer(d->global_index));
    put(o, "name", str_or_empty(d->name));
    put(o, "vendor", str_or_empty(d->vendor));
    put(o, "pci_bus_id", str_or_empty(d->pci_bus_id));
    put(o, "total_memory", json_integer((json_int_t)d->total_memory));
    put(o, "free_memory", json_integer((json_int_t)d->free_memory));
    put(o, "speed", json_real(d->speed));
    put(o, "numa_node", json_integer(d->numa_node));
    put(o, "local_cpus", str_or_empty(d->local_cpus));
    put(o, "host_addressable", json_boolean(d->host_addressable));
    put(o, "caps", json_string(info_caps_string(d->caps, caps, sizeof(caps))));
    return o;
}

static json_t *aware_json(const info_aware_t *a)
{
    json_t *o = json_object();
    put(o, "aware", a->known ? json_boolean(a->aware) : json_null());
    put(o, "detail", json_string(a->detail));
    return o;
}

static json_t *report_json(const info_report_t *r)
{
    json_t *root = json_object();

    json_t *ver = json_object();
    char buf[64];
    snprintf(buf, sizeof(buf), "%d.%d.%d", r->major, r->minor, r->patch);
    put(ver, "library", json_string(buf));
    snprintf(buf, sizeof(buf), "%u.%u", r->api_version >> 16, r->api_version & 0xffffu);
    put(ver, "api", json_string(buf));
    put(root, "version", ver);

    /* null when hcrt_init succeeded; otherwise why it did not, and the variables left out of this report. */
    json_t *init_error = json_null();
    if (r->init_status != NULL) {
        init_error = json_object();
        put(init_error, "status", json_string(r->init_status));
        put(init_error, "message", json_string(r->init_error));
        put(init_error, "ignored", json_string(r->ignored));
    }
    put(root, "init_error", init_error);

    json_t *backends = json_array();
    for (int b = 0; b < r->nbackends; b++) {
        const info_backend_t *ib = &r->backends[b];
        json_t *o = json_object();
        put(o, "name", str_or_empty(ib->info.name));
        put(o, "status", json_string(info_status_word(ib->info.status)));
        put(o, "reason", str_or_empty(ib->info.reason));
        put(o, "path", str_or_empty(ib->info.path));
        /* the compute extension (hcrt/compute.h); compute_detail says why not */
        put(o, "compute", json_boolean(ib->info.compute));
        put(o, "compute_detail", str_or_empty(ib->info.compute_detail));
        put(o, "vendor_collectives", json_boolean(ib->vendor_coll));
        put(o, "vendor_collectives_reason", str_or_empty(ib->vendor_coll_reason));
        json_t *devs = json_array();
        for (int i = 0; i < ib->info.device_count; i++)
            json_array_append_new(devs, device_json(&ib->devices[i]));
        put(o, "devices", devs);
        json_array_append_new(backends, o);
    }
    put(root, "backends", backends);

    put(root, "selected", device_json(&r->selected));
    json_t *ranks = json_array();
    for (int i = 0; i < r->nranks; i++) {
        json_t *o = json_object();
        put(o, "rank", json_integer(r->ranks[i].rank));
        put(o, "local_rank", json_integer(r->ranks[i].local_rank));
        put(o, "host", json_string(r->ranks[i].host));
        put(o, "backend", json_string(r->ranks[i].backend));
        put(o, "index", json_integer(r->ranks[i].index));
        put(o, "bound_cpus", json_string(r->ranks[i].bound_cpus));
        json_array_append_new(ranks, o);
    }
    put(root, "ranks", ranks);

    json_t *topo = json_object();
    put(topo, "packages", json_integer(r->topo.packages));
    put(topo, "numa_nodes", json_integer(r->topo.numa_nodes));
    put(topo, "cores", json_integer(r->topo.cores));
    put(topo, "pus", json_integer(r->topo.pus));
    put(topo, "bound_cpus", str_or_empty(r->topo.bound_cpus));
    json_t *near = json_array();
    for (int b = 0; b < r->nbackends; b++)
        for (int i = 0; i < r->backends[b].info.device_count; i++) {
            const hcrt_device_props_t *d = &r->backends[b].devices[i];
            json_t *o = json_object();
            snprintf(buf, sizeof(buf), "%s:%d", d->backend, d->index);
            put(o, "device", json_string(buf));
            put(o, "local_cpus", str_or_empty(d->local_cpus));
            put(o, "numa_node", json_integer(d->numa_node));
            json_array_append_new(near, o);
        }
    put(topo, "device_locality", near);
    put(root, "topology", topo);

    json_t *mpi = json_object();
    put(mpi, "library", json_string(r->mpi.library));
    put(mpi, "initialized", json_boolean(r->mpi.initialized));
    put(mpi, "world_size", json_integer(r->mpi.world_size));
    put(mpi, "cuda", aware_json(&r->mpi.cuda));
    put(mpi, "rocm", aware_json(&r->mpi.rocm));
    put(mpi, "device_aware",
        json_boolean((r->mpi.cuda.known && r->mpi.cuda.aware) || (r->mpi.rocm.known && r->mpi.rocm.aware)));
    put(root, "mpi", mpi);

    /* Keyed by variable name (config["HCRT_TIMEOUT"]["value"]); jansson keeps the table's order. */
    json_t *config = json_object();
    for (size_t i = 0; i < r->nconfig; i++) {
        const hcrt_config_entry_t *e = &r->config[i];
        json_t *o = json_object();
        put(o, "name", str_or_empty(e->name));
        put(o, "default", str_or_empty(e->def));
        put(o, "value", str_or_empty(e->value));
        put(o, "type", str_or_empty(e->type));
        put(o, "is_set", json_boolean(e->is_set));
        put(o, "help", str_or_empty(e->help));
        json_object_set_new(config, e->name, o);
    }
    put(root, "config", config);
    return root;
}

int info_print_json(const info_report_t *r)
{
    json_t *root = report_json(r);
    if (root == NULL)
        return 1;
    int rc = json_dumpf(root, stdout, JSON_INDENT(2)) != 0;
    json_decref(root);
    fputc('\n', stdout);
    fflush(stdout);
    return rc || ferror(stdout) ? 1 : 0;
}
