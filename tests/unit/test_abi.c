/*
 * tests/unit/test_abi.c - pins the layout of the plugin ABI and public param structs. A change here is an
 * ABI break: v1 is frozen, so new fields go at the end (and this test grows), never in the middle.
 */
#include <stddef.h>

#include "hcrt/backend.h"
#include "hcrt/hcrt.h"
#include "test.h"

#define P (sizeof(void *))

/* The compute extension's layout, pinned at compile time: a change here breaks every compute plugin. */
_Static_assert(offsetof(hcrt_backend_v1_t, compute) == 24 + 36 * sizeof(void *), "compute follows reduce3");
_Static_assert(offsetof(hcrt_backend_compute_v1_t, struct_size) == 0, "struct_size first");
_Static_assert(offsetof(hcrt_backend_compute_v1_t, version) == 8, "version");
_Static_assert(offsetof(hcrt_backend_compute_v1_t, gemm) == 16, "gemm");
_Static_assert(offsetof(hcrt_backend_compute_v1_t, cast) == 16 + 7 * sizeof(void *), "cast last of v1");
_Static_assert(sizeof(hcrt_backend_compute_v1_t) == 16 + 8 * sizeof(void *), "compute v1 size");
_Static_assert(HCRT_BACKEND_COMPUTE_V1_MIN_SIZE == sizeof(hcrt_backend_compute_v1_t), "every v1 op is required");
_Static_assert(offsetof(hcrt_backend_optim_t, kind) == 8 && offsetof(hcrt_backend_optim_t, grad_scale) == 16,
               "optim header");
_Static_assert(offsetof(hcrt_backend_optim_t, eps) == 60 && sizeof(hcrt_backend_optim_t) == 64, "optim layout");

int main(void)
{
    /* Header part of the plugin table. */
    CHECK(offsetof(hcrt_backend_v1_t, struct_size) == 0);
    CHECK(offsetof(hcrt_backend_v1_t, abi_version) == 8);
    CHECK(offsetof(hcrt_backend_v1_t, name) == 16);
    /* Every op in order, one pointer each. */
    CHECK(offsetof(hcrt_backend_v1_t, init) == 24);
    CHECK(offsetof(hcrt_backend_v1_t, finalize) == 24 + 1 * P);
    CHECK(offsetof(hcrt_backend_v1_t, last_error) == 24 + 2 * P);
    CHECK(offsetof(hcrt_backend_v1_t, device_count) == 24 + 3 * P);
    CHECK(offsetof(hcrt_backend_v1_t, device_props) == 24 + 4 * P);
    CHECK(offsetof(hcrt_backend_v1_t, health) == 24 + 5 * P);
    CHECK(offsetof(hcrt_backend_v1_t, mem_alloc) == 24 + 6 * P);
    CHECK(offsetof(hcrt_backend_v1_t, mem_free) == 24 + 7 * P);
    CHECK(offsetof(hcrt_backend_v1_t, host_alloc) == 24 + 8 * P);
    CHECK(offsetof(hcrt_backend_v1_t, host_free) == 24 + 9 * P);
    CHECK(offsetof(hcrt_backend_v1_t, memset) == 24 + 10 * P);
    CHECK(offsetof(hcrt_backend_v1_t, memcpy) == 24 + 11 * P);
    CHECK(offsetof(hcrt_backend_v1_t, memcpy_peer) == 24 + 12 * P);
    CHECK(offsetof(hcrt_backend_v1_t, stream_create) == 24 + 13 * P);
    CHECK(offsetof(hcrt_backend_v1_t, stream_destroy) == 24 + 14 * P);
    CHECK(offsetof(hcrt_backend_v1_t, stream_sync) == 24 + 15 * P);
    CHECK(offsetof(hcrt_backend_v1_t, event_create) == 24 + 16 * P);
    CHECK(offsetof(hcrt_backend_v1_t, event_destroy) == 24 + 17 * P);
    CHECK(offsetof(hcrt_backend_v1_t, event_record) == 24 + 18 * P);
    CHECK(offsetof(hcrt_backend_v1_t, event_sync) == 24 + 19 * P);
    CHECK(offsetof(hcrt_backend_v1_t, event_query) == 24 + 20 * P);
    CHECK(offsetof(hcrt_backend_v1_t, event_elapsed) == 24 + 21 * P);
    CHECK(offsetof(hcrt_backend_v1_t, reduce) == 24 + 22 * P);
    CHECK(offsetof(hcrt_backend_v1_t, scale) == 24 + 23 * P);
    CHECK(HCRT_BACKEND_V1_MIN_SIZE == 24 + 24 * P);
    /* Optional tail. */
    CHECK(offsetof(hcrt_backend_v1_t, coll_unique_id_size) == 24 + 24 * P);
    CHECK(offsetof(hcrt_backend_v1_t, coll_get_unique_id) == 24 + 25 * P);
    CHECK(offsetof(hcrt_backend_v1_t, coll_init) == 24 + 26 * P);
    CHECK(offsetof(hcrt_backend_v1_t, coll_destroy) == 24 + 27 * P);
    CHECK(offsetof(hcrt_backend_v1_t, coll_abort) == 24 + 28 * P);
    CHECK(offsetof(hcrt_backend_v1_t, coll_allreduce) == 24 + 29 * P);
    CHECK(offsetof(hcrt_backend_v1_t, coll_reduce_scatter) == 24 + 30 * P);
    CHECK(offsetof(hcrt_backend_v1_t, coll_allgather) == 24 + 31 * P);
    CHECK(offsetof(hcrt_backend_v1_t, coll_broadcast) == 24 + 32 * P);
    CHECK(offsetof(hcrt_backend_v1_t, host_register) == 24 + 33 * P);
    CHECK(offsetof(hcrt_backend_v1_t, host_unregister) == 24 + 34 * P);
    CHECK(offsetof(hcrt_backend_v1_t, reduce3) == 24 + 35 * P);
    CHECK(offsetof(hcrt_backend_v1_t, compute) == 24 + 36 * P);
    CHECK(sizeof(hcrt_backend_v1_t) == 24 + 37 * P);

    /* The compute sub-table: every op in order, one pointer each. */
    CHECK(offsetof(hcrt_backend_compute_v1_t, gemm) == 16 + 0 * P);
    CHECK(offsetof(hcrt_backend_compute_v1_t, bias_add) == 16 + 1 * P);
    CHECK(offsetof(hcrt_backend_compute_v1_t, relu) == 16 + 2 * P);
    CHECK(offsetof(hcrt_backend_compute_v1_t, relu_backward) == 16 + 3 * P);
    CHECK(offsetof(hcrt_backend_compute_v1_t, softmax_xent) == 16 + 4 * P);
    CHECK(offsetof(hcrt_backend_compute_v1_t, col_sum) == 16 + 5 * P);
    CHECK(offsetof(hcrt_backend_compute_v1_t, optim_step) == 16 + 6 * P);
    CHECK(offsetof(hcrt_backend_compute_v1_t, cast) == 16 + 7 * P);
    CHECK(HCRT_BACKEND_COMPUTE_VERSION == 1);
    CHECK(offsetof(hcrt_backend_optim_t, lr) == 20);
    CHECK(offsetof(hcrt_backend_optim_t, momentum) == 24);
    CHECK(offsetof(hcrt_backend_optim_t, weight_decay) == 28);
    CHECK(offsetof(hcrt_backend_optim_t, decay) == 32);
    CHECK(offsetof(hcrt_backend_optim_t, step_size) == 36);
    CHECK(offsetof(hcrt_backend_optim_t, bias2_sqrt) == 40);
    CHECK(offsetof(hcrt_backend_optim_t, beta1) == 44);
    CHECK(offsetof(hcrt_backend_optim_t, one_minus_beta2) == 56);

    /* Services, device properties, health. */
    CHECK(offsetof(hcrt_backend_services_t, host) == 8);
    CHECK(offsetof(hcrt_backend_services_t, log) == 16);
    CHECK(offsetof(hcrt_backend_services_t, log_enabled) == 24);
    CHECK(offsetof(hcrt_backend_services_t, config_get) == 32);
    CHECK(sizeof(hcrt_backend_services_t) == 40);
    CHECK(offsetof(hcrt_backend_device_props_t, name) == 8);
    CHECK(offsetof(hcrt_backend_device_props_t, vendor) == 136);
    CHECK(offsetof(hcrt_backend_device_props_t, pci_bus_id) == 200);
    CHECK(offsetof(hcrt_backend_device_props_t, total_memory) == 232);
    CHECK(offsetof(hcrt_backend_device_props_t, free_memory) == 240);
    CHECK(offsetof(hcrt_backend_device_props_t, speed) == 248);
    CHECK(offsetof(hcrt_backend_device_props_t, caps) == 256);
    CHECK(offsetof(hcrt_backend_device_props_t, numa_node) == 264);
    CHECK(sizeof(hcrt_backend_device_props_t) == 272);
    CHECK(offsetof(hcrt_backend_health_t, device_lost) == 8);
    CHECK(offsetof(hcrt_backend_health_t, ecc_corrected) == 16);
    CHECK(offsetof(hcrt_backend_health_t, ecc_uncorrected) == 24);
    CHECK(offsetof(hcrt_backend_health_t, last_status) == 32);
    CHECK(offsetof(hcrt_backend_health_t, last_error) == 36);
    CHECK(sizeof(hcrt_backend_health_t) == 296);

    /* Public params structs start with struct_size. */
    CHECK(offsetof(hcrt_context_params_t, struct_size) == 0);
    CHECK(offsetof(hcrt_context_params_t, api_version) == 8);
    CHECK(offsetof(hcrt_context_params_t, flags) == 12);
    CHECK(offsetof(hcrt_context_params_t, backends) == 16);
    CHECK(sizeof(hcrt_context_params_t) == 24);
    CHECK(offsetof(hcrt_device_props_t, struct_size) == 0);
    CHECK(offsetof(hcrt_backend_info_t, struct_size) == 0);
    CHECK(offsetof(hcrt_config_entry_t, struct_size) == 0);
    CHECK(sizeof(hcrt_buffer_t) == 32);
    CHECK(offsetof(hcrt_backend_info_t, compute) == 44 && offsetof(hcrt_backend_info_t, compute_detail) == 48);
    CHECK(offsetof(hcrt_optim_params_t, struct_size) == 0);
    CHECK(offsetof(hcrt_optim_params_t, kind) == 8 && offsetof(hcrt_optim_params_t, step) == 16);
    CHECK(offsetof(hcrt_optim_params_t, lr) == 24 && offsetof(hcrt_optim_params_t, eps) == 72);
    CHECK(offsetof(hcrt_optim_params_t, nesterov) == 80 && sizeof(hcrt_optim_params_t) == 88);
    /* Balancer, exact mode (hcrt/balance.h, hcrt/exact.h). */
    CHECK(offsetof(hcrt_balance_params_t, struct_size) == 0);
    CHECK(offsetof(hcrt_balance_params_t, micro_batches) == 8);
    CHECK(offsetof(hcrt_balance_params_t, micro_batch_size) == 16);
    CHECK(offsetof(hcrt_balance_params_t, mode) == 24);
    CHECK(offsetof(hcrt_balance_params_t, interval) == 28);
    CHECK(offsetof(hcrt_balance_params_t, smoothing) == 32);
    CHECK(offsetof(hcrt_balance_params_t, hysteresis) == 40);
    CHECK(offsetof(hcrt_balance_params_t, warmup_steps) == 48);
    CHECK(offsetof(hcrt_balance_params_t, max_micro_batches) == 56);
    CHECK(offsetof(hcrt_balance_params_t, bytes_per_sample) == 64);
    CHECK(offsetof(hcrt_balance_params_t, device) == 72);
    CHECK(offsetof(hcrt_balance_params_t, use_device_speed) == 80);
    CHECK(sizeof(hcrt_balance_params_t) == 88);
    CHECK(offsetof(hcrt_balance_decision_t, struct_size) == 0);
    CHECK(sizeof(hcrt_balance_decision_t) == 48);
    CHECK(offsetof(hcrt_exact_params_t, struct_size) == 0);
    CHECK(offsetof(hcrt_exact_params_t, lsb_exponent) == 8);
    CHECK(offsetof(hcrt_exact_params_t, top_exponent) == 12);
    CHECK(sizeof(hcrt_exact_params_t) == 16);
    CHECK(HCRT_BALANCE_ONLINE == 2 && HCRT_BALANCE_UNKNOWN == 6);

    /* Enum values are ABI. */
    CHECK(HCRT_F32 == 8 && HCRT_BF16 == 7 && HCRT_DTYPE_COUNT == 10);
    CHECK(HCRT_OP_AVG == 4 && HCRT_OP_COUNT == 5);
    CHECK(HCRT_OPTIM_SGD == 0 && HCRT_OPTIM_ADAMW == 1);
    CHECK(HCRT_ERR_NOT_SUPPORTED == -4 && HCRT_ERR_TIMEOUT == -12);

    /* Optional-op detection by table size and NULL. */
    hcrt_backend_v1_t t = {0};
    t.struct_size = HCRT_BACKEND_V1_MIN_SIZE;
    t.coll_allreduce = (void *)1; /* set, but beyond the declared size: absent */
    CHECK(!HCRT_BACKEND_HAS_OP(&t, coll_allreduce));
    t.struct_size = sizeof(t);
    CHECK(HCRT_BACKEND_HAS_OP(&t, coll_allreduce));
    t.coll_allreduce = NULL;
    CHECK(!HCRT_BACKEND_HAS_OP(&t, coll_allreduce));
    /* a table compiled before the compute field existed ends at reduce3: no compute */
    t.struct_size = offsetof(hcrt_backend_v1_t, compute);
    t.compute = (const hcrt_backend_compute_v1_t *)&t;
    CHECK(!HCRT_BACKEND_HAS_OP(&t, compute));
    t.struct_size = sizeof(t);
    CHECK(HCRT_BACKEND_HAS_OP(&t, compute));
    TEST_DONE();
}
