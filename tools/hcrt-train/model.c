/*
 * tools/hcrt-train/model.c - the MLP of hcrt-train on the compute extension (hcrt/compute.h).
 *
 * Layer l maps d_l to d_{l+1}: H = A W + b, then ReLU except on the last layer, whose output is the
 * logits. The backward pass of layer l (from its output gradient D):
 *     dW (+)= A^T D,  db (+)= colsum(D),  and for l > 0:  D' = relu'(A) * (D W^T)
 * where A is the layer's input (the previous layer's ReLU output, kept in place in act[l-1]).
 * With f16/bf16 gemm operands, each operand is cast into a scratch copy first; the master weights,
 * gradients and everything else stay f32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "model.h"

int mlp_parse_layers(const char *text, int *dims, char *err, size_t errlen)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 65536 || (*end != ',' && *end != '\0')) {
            snprintf(err, errlen, "--layers wants sizes like 512,1024,10 (each 1..65536), got '%s'", text);
            return -1;
        }
        if (n > MLP_MAX_LAYERS) {
            snprintf(err, errlen, "--layers: at most %d layers", MLP_MAX_LAYERS);
            return -1;
        }
        dims[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n < 2) {
        snprintf(err, errlen, "--layers needs at least an input and an output size, got '%s'", text);
        return -1;
    }
    if (dims[n - 1] < 2) {
        snprintf(err, errlen, "--layers: the last size is the number of classes, at least 2");
        return -1;
    }
    return n - 1;
}

hcrt_status_t mlp_create(mlp_t *m, hcrt_context_t *ctx, hcrt_device_t *dev, const int *dims, int nlayers,
                         size_t micro, hcrt_dtype_t gemm_dtype, size_t capacity_multiple, size_t *capacity)
{
    memset(m, 0, sizeof(*m));
    m->dev = dev;
    m->nlayers = nlayers;
    m->micro = micro;
    m->gemm_dtype = gemm_dtype;
    TRY(hcrt_device_host(ctx, &m->host));
    size_t off = 0;
    for (int l = 0; l <= nlayers; l++) {
        m->dims[l] = dims[l];
        if ((size_t)dims[l] > m->max_dim)
            m->max_dim = (size_t)dims[l];
    }
    for (int l = 0; l < nlayers; l++) {
        m->w_off[l] = off;
        off += (size_t)dims[l] * (size_t)dims[l + 1];
        m->b_off[l] = off;
        off += (size_t)dims[l + 1];
    }
    m->nparams = off;
    const size_t cap = (off + capacity_multiple - 1) / capacity_multiple * capacity_multiple;
    *capacity = cap;
    TRY(hcrt_stream_create(dev, &m->stream));
    TRY(hcrt_mem_alloc(dev, cap * sizeof(float), (void **)&m->params));
    TRY(hcrt_mem_alloc(dev, cap * sizeof(float), (void **)&m->grads));
    TRY(hcrt_memset(dev, m->params, 0, cap * sizeof(float)));
    TRY(hcrt_memset(dev, m->grads, 0, cap * sizeof(float)));
    TRY(hcrt_mem_alloc(dev, sizeof(float), (void **)&m->loss));
    TRY(hcrt_mem_alloc(dev, micro * (size_t)dims[0] * sizeof(float), (void **)&m->x));
    TRY(hcrt_mem_alloc(dev, micro * sizeof(int32_t), (void **)&m->labels));
    for (int l = 0; l < nlayers; l++)
        TRY(hcrt_mem_alloc(dev, micro * (size_t)dims[l + 1] * sizeof(float), (void **)&m->act[l]));
    TRY(hcrt_mem_alloc(dev, micro * m->max_dim * sizeof(float), (void **)&m->delta_a));
    TRY(hcrt_mem_alloc(dev, micro * m->max_dim * sizeof(float), (void **)&m->delta_b));
    if (gemm_dtype != HCRT_F32) {
        /* The largest operand: a weight matrix or a micro-batch of activations. */
        size_t big = micro * m->max_dim;
        for (int l = 0; l < nlayers; l++)
            if ((size_t)dims[l] * (size_t)dims[l + 1] > big)
                big = (size_t)dims[l] * (size_t)dims[l + 1];
        TRY(hcrt_mem_alloc(dev, big * 2, &m->lp_a));
        TRY(hcrt_mem_alloc(dev, big * 2, &m->lp_b));
    }
    return HCRT_OK;
}

void mlp_destroy(mlp_t *m)
{
    if (m->stream)
        hcrt_stream_sync(m->stream);
    void *bufs[] = {m->params, m->grads, m->loss, m->x, m->labels, m->delta_a, m->delta_b, m->lp_a, m->lp_b};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        if (bufs[i])
            hcrt_mem_free(m->dev, bufs[i]);
    for (int l = 0; l < m->nlayers; l++)
        if (m->act[l])
            hcrt_mem_free(m->dev, m->act[l]);
    hcrt_stream_destroy(m->stream);
    memset(m, 0, sizeof(*m));
}

hcrt_status_t mlp_init_params(mlp_t *m, uint64_t seed)
{
    float *h = malloc(m->nparams * sizeof(float));
    if (h == NULL)
        return HCRT_ERR_NO_MEMORY;
    for (int l = 0; l < m->nlayers; l++) {
        /* Uniform in +-sqrt(6 / fan_in) (He): ReLU layers keep their scale. */
        float scale = 1.0f;
        for (float s = 6.0f / (float)m->dims[l]; scale * scale > s;)
            scale *= 0.5f; /* a power of two near sqrt(6/fan_in): the same bits everywhere, no libm */
        train_data_init_weights(seed, 2 * l, scale, h + m->w_off[l], (size_t)m->dims[l] * (size_t)m->dims[l + 1]);
        memset(h + m->b_off[l], 0, (size_t)m->dims[l + 1] * sizeof(float));
    }
    hcrt_status_t st = hcrt_memcpy(m->dev, m->params, m->host, h, m->nparams * sizeof(float));
    free(h);
    return st;
}

hcrt_status_t mlp_zero_grads(mlp_t *m)
{
    TRY(hcrt_stream_sync(m->stream));
    TRY(hcrt_memset(m->dev, m->grads, 0, m->nparams * sizeof(float)));
    return hcrt_memset(m->dev, m->loss, 0, sizeof(float));
}

/* c = alpha op(a) op(b) + beta c with f32 operands, cast to the model's gemm dtype when it is not f32. */
static hcrt_status_t gemm(mlp_t *m, bool ta, bool tb, size_t rows, size_t cols, size_t k, const float *a,
                          size_t a_count, size_t lda, const float *b, size_t b_count, size_t ldb, float beta,
                          float *c, size_t ldc)
{
    const void *pa = a, *pb = b;
    if (m->gemm_dtype != HCRT_F32) {
        TRY(hcrt_compute_cast(m->dev, m->lp_a, m->gemm_dtype, a, HCRT_F32, a_count, m->stream));
        TRY(hcrt_compute_cast(m->dev, m->lp_b, m->gemm_dtype, b, HCRT_F32, b_count, m->stream));
        pa = m->lp_a;
        pb = m->lp_b;
    }
    return hcrt_compute_gemm(m->dev, ta, tb, rows, cols, k, 1.0f, pa, lda, pb, ldb, beta, c, ldc, m->gemm_dtype,
                             m->stream);
}

hcrt_status_t mlp_micro_batch(mlp_t *m, const float *x, const int32_t *labels, bool overwrite)
{
    const size_t mb = m->micro;
    const int L = m->nlayers;
    TRY(hcrt_memcpy_async(m->dev, m->x, m->host, x, mb * (size_t)m->dims[0] * sizeof(float), m->stream));
    TRY(hcrt_memcpy_async(m->dev, m->labels, m->host, labels, mb * sizeof(int32_t), m->stream));

    /* Forward. */
    for (int l = 0; l < L; l++) {
        const size_t in = (size_t)m->dims[l], out = (size_t)m->dims[l + 1];
        const float *a = l == 0 ? m->x : m->act[l - 1];
        TRY(gemm(m, false, false, mb, out, in, a, mb * in, in, m->params + m->w_off[l], in * out, out, 0.0f,
                 m->act[l], out));
        TRY(hcrt_compute_bias_add(m->dev, m->act[l], m->act[l], m->params + m->b_off[l], mb, out, m->stream));
        if (l < L - 1)
            TRY(hcrt_compute_relu(m->dev, m->act[l], m->act[l], mb * out, m->stream));
    }
    /* Loss sum and the logits' gradient (softmax - onehot, per sample). */
    const size_t classes = (size_t)m->dims[L];
    float *d = m->delta_a, *spare = m->delta_b;
    TRY(hcrt_compute_softmax_xent(m->dev, m->act[L - 1], m->labels, mb, classes, m->loss, d, !overwrite, m->stream));

    /* Backward. */
    const float beta = overwrite ? 0.0f : 1.0f;
    for (int l = L - 1; l >= 0; l--) {
        const size_t in = (size_t)m->dims[l], out = (size_t)m->dims[l + 1];
        const float *a = l == 0 ? m->x : m->act[l - 1];
        TRY(gemm(m, true, false, in, out, mb, a, mb * in, in, d, mb * out, out, beta, m->grads + m->w_off[l], out));
        TRY(hcrt_compute_col_sum(m->dev, m->grads + m->b_off[l], d, mb, out, !overwrite, m->stream));
        if (l == 0)
            break;
        /* spare = d W^T, then the ReLU's gradient with the layer input (its ReLU output) as the mask. */
        TRY(gemm(m, false, true, mb, in, out, d, mb * out, out, m->params + m->w_off[l], in * out, out, 0.0f,
                 spare, in));
        TRY(hcrt_compute_relu_backward(m->dev, spare, spare, m->act[l - 1], mb * in, m->stream));
        float *t = d;
        d = spare;
        spare = t;
    }
    return HCRT_OK;
}
