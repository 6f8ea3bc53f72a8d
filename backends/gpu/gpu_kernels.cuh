/*
 * backends/gpu/gpu_kernels.cuh - the element-wise reduction (two and three operand) and scale kernels of
 * the cuda and hip plugins.
 *
 * Written once in the dialect nvcc and hipcc share (__global__, blockIdx, <<<...>>>); the including file
 * first includes its vendor runtime header and defines
 *     HCRT_GPU_SYM(x)        the plugin-prefixed name of an exported launcher (hcrt_cuda_x, hcrt_hip_x),
 *     gpuStream_t            the vendor stream type,
 *     HCRT_GPU_LAUNCH_ERROR() the call that returns (and clears) the error of the last launch.
 *
 * The arithmetic is in gpu_elem.cuh and matches kernels/host_kernels.c bit for bit, so a
 * reduction gives the same result on every backend. HCRT_OP_AVG combines as sum (mapped before launch).
 *
 * Layout of the work: a grid-stride loop. When all pointers are 16-byte aligned, each thread moves one
 * 16-byte vector per step (memory-bound kernels reach full bandwidth only with wide accesses for the
 * narrow types, over PCIe to mapped host memory as much as in device memory) and the tail is done
 * element by element. Pointers that are not even aligned to the element size (the runtime allows byte
 * offsets into buffers) take a byte-wise path, because a misaligned access would be a sticky error that
 * kills the whole device context.
 */
#include "gpu_elem.cuh"

namespace
{

/* ---- kernels ---- */

/* 16-byte vector viewed as elements (a union keeps the type punning defined for the compiler). */
template <typename T> union vec16 {
    uint4 raw;
    T e[16 / sizeof(T)];
};

/* dst = op(a, b), a the left operand. dst may be a or b: each element is read before it is written, by
 * the same thread. */
template <typename T, int OP>
__global__ void reduce3_kernel(T *dst, const T *a, const T *b, size_t count, int vectorised)
{
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t start = 0;
    if (vectorised) {
        const size_t per = 16 / sizeof(T);
        size_t nvec = count / per;
        uint4 *d4 = reinterpret_cast<uint4 *>(dst);
        const uint4 *a4 = reinterpret_cast<const uint4 *>(a);
        const uint4 *b4 = reinterpret_cast<const uint4 *>(b);
        for (size_t i = tid; i < nvec; i += stride) {
            vec16<T> x, y;
            x.raw = a4[i];
            y.raw = b4[i];
#pragma unroll
            for (size_t k = 0; k < per; k++)
                x.e[k] = combine_elem<T, OP>(x.e[k], y.e[k]);
            d4[i] = x.raw;
        }
        start = nvec * per;
    }
    for (size_t i = start + tid; i < count; i += stride)
        dst[i] = combine_elem<T, OP>(a[i], b[i]);
}

template <typename T>
__global__ void reduce3_bytes_kernel(unsigned char *dst, const unsigned char *a, const unsigned char *b, size_t count,
                                     int op)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        T x, y;
        memcpy(&x, a + i * sizeof(T), sizeof(T));
        memcpy(&y, b + i * sizeof(T), sizeof(T));
        x = combine_dyn<T>(x, y, op);
        memcpy(dst + i * sizeof(T), &x, sizeof(T));
    }
}

template <typename T> __global__ void scale_kernel(T *ptr, size_t count, double factor, int vectorised)
{
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t start = 0;
    if (vectorised) {
        const size_t per = 16 / sizeof(T);
        size_t nvec = count / per;
        uint4 *p4 = reinterpret_cast<uint4 *>(ptr);
        for (size_t i = tid; i < nvec; i += stride) {
            vec16<T> a;
            a.raw = p4[i];
#pragma unroll
            for (size_t k = 0; k < per; k++)
                a.e[k] = scaler<T>::apply(a.e[k], factor);
            p4[i] = a.raw;
        }
        start = nvec * per;
    }
    for (size_t i = start + tid; i < count; i += stride)
        ptr[i] = scaler<T>::apply(ptr[i], factor);
}

template <typename T> __global__ void scale_bytes_kernel(unsigned char *ptr, size_t count, double factor)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        T a;
        memcpy(&a, ptr + i * sizeof(T), sizeof(T));
        a = scaler<T>::apply(a, factor);
        memcpy(ptr + i * sizeof(T), &a, sizeof(T));
    }
}

/* ---- host-side launch helpers ---- */

const unsigned kThreads = 256;

unsigned grid_for(size_t work, int max_blocks)
{
    size_t blocks = (work + kThreads - 1) / kThreads;
    size_t cap = max_blocks > 0 ? (size_t)max_blocks : 1024;
    if (blocks > cap)
        blocks = cap;
    return blocks ? (unsigned)blocks : 1u;
}

template <typename T>
void launch_reduce3(void *dst, const void *a, const void *b, size_t count, int op, gpuStream_t s, int max_blocks)
{
    uintptr_t bits = (uintptr_t)dst | (uintptr_t)a | (uintptr_t)b;
    if (bits % sizeof(T) != 0) {
        reduce3_bytes_kernel<T><<<grid_for(count, max_blocks), kThreads, 0, s>>>(
            (unsigned char *)dst, (const unsigned char *)a, (const unsigned char *)b, count, op);
        return;
    }
    int vectorised = bits % 16 == 0;
    size_t work = vectorised ? count / (16 / sizeof(T)) + 1 : count;
    unsigned grid = grid_for(work, max_blocks);
    T *d = (T *)dst;
    const T *x = (const T *)a, *y = (const T *)b;
    switch (op) {
    case HCRT_OP_SUM:
        reduce3_kernel<T, HCRT_OP_SUM><<<grid, kThreads, 0, s>>>(d, x, y, count, vectorised);
        break;
    case HCRT_OP_PROD:
        reduce3_kernel<T, HCRT_OP_PROD><<<grid, kThreads, 0, s>>>(d, x, y, count, vectorised);
        break;
    case HCRT_OP_MIN:
        reduce3_kernel<T, HCRT_OP_MIN><<<grid, kThreads, 0, s>>>(d, x, y, count, vectorised);
        break;
    default:
        reduce3_kernel<T, HCRT_OP_MAX><<<grid, kThreads, 0, s>>>(d, x, y, count, vectorised);
        break;
    }
}

template <typename T> void launch_scale(void *ptr, size_t count, double factor, gpuStream_t s, int max_blocks)
{
    uintptr_t bits = (uintptr_t)ptr;
    if (bits % sizeof(T) != 0) {
        scale_bytes_kernel<T><<<grid_for(count, max_blocks), kThreads, 0, s>>>((unsigned char *)ptr, count, factor);
        return;
    }
    int vectorised = bits % 16 == 0;
    size_t work = vectorised ? count / (16 / sizeof(T)) + 1 : count;
    scale_kernel<T><<<grid_for(work, max_blocks), kThreads, 0, s>>>((T *)ptr, count, factor, vectorised);
}

} /* namespace */

/*
 * dst[i] = op(a[i], b[i]) for i < count, a the left operand (it decides floating ties and which NaN
 * survives, as in the host kernels). The pointers are device memory or mapped host memory; dst may equal
 * a or b (other overlaps are refused by the caller). dtype and op are valid (checked by the caller);
 * HCRT_OP_AVG is combined as sum. Returns the vendor error code of the launch (0 on success); errors
 * during execution show at the next synchronisation.
 */
extern "C" int HCRT_GPU_SYM(launch_reduce3)(void *dst, const void *a, const void *b, size_t count, int dtype, int op,
                                            void *stream, int max_blocks)
{
    gpuStream_t s = (gpuStream_t)stream;
    if (op == HCRT_OP_AVG)
        op = HCRT_OP_SUM;
    if (count == 0)
        return 0;
    switch (dtype) {
    case HCRT_I8:
        launch_reduce3<int8_t>(dst, a, b, count, op, s, max_blocks);
        break;
    case HCRT_U8:
        launch_reduce3<uint8_t>(dst, a, b, count, op, s, max_blocks);
        break;
    case HCRT_I32:
        launch_reduce3<int32_t>(dst, a, b, count, op, s, max_blocks);
        break;
    case HCRT_U32:
        launch_reduce3<uint32_t>(dst, a, b, count, op, s, max_blocks);
        break;
    case HCRT_I64:
        launch_reduce3<int64_t>(dst, a, b, count, op, s, max_blocks);
        break;
    case HCRT_U64:
        launch_reduce3<uint64_t>(dst, a, b, count, op, s, max_blocks);
        break;
    case HCRT_F16:
        launch_reduce3<f16_t>(dst, a, b, count, op, s, max_blocks);
        break;
    case HCRT_BF16:
        launch_reduce3<bf16_t>(dst, a, b, count, op, s, max_blocks);
        break;
    case HCRT_F32:
        launch_reduce3<float>(dst, a, b, count, op, s, max_blocks);
        break;
    default:
        launch_reduce3<double>(dst, a, b, count, op, s, max_blocks);
        break;
    }
    return (int)HCRT_GPU_LAUNCH_ERROR();
}

/*
 * dst[i] = op(dst[i], src[i]) for i < count on the current device, enqueued on `stream`: reduce3 with dst
 * as its left operand. dtype and op are valid (checked by the caller); HCRT_OP_AVG is combined as sum.
 * Returns the vendor error code of the launch (0 on success); errors during execution show at the next
 * synchronisation.
 */
extern "C" int HCRT_GPU_SYM(launch_reduce)(void *dst, const void *src, size_t count, int dtype, int op, void *stream,
                                           int max_blocks)
{
    return HCRT_GPU_SYM(launch_reduce3)(dst, dst, src, count, dtype, op, stream, max_blocks);
}

/* ptr[i] *= factor for i < count on the current device, enqueued on `stream`. Same conventions. */
extern "C" int HCRT_GPU_SYM(launch_scale)(void *ptr, size_t count, int dtype, double factor, void *stream,
                                          int max_blocks)
{
    gpuStream_t s = (gpuStream_t)stream;
    if (count == 0)
        return 0;
    switch (dtype) {
    case HCRT_I8:
        launch_scale<int8_t>(ptr, count, factor, s, max_blocks);
        break;
    case HCRT_U8:
        launch_scale<uint8_t>(ptr, count, factor, s, max_blocks);
        break;
    case HCRT_I32:
        launch_scale<int32_t>(ptr, count, factor, s, max_blocks);
        break;
    case HCRT_U32:
        launch_scale<uint32_t>(ptr, count, factor, s, max_blocks);
        break;
    case HCRT_I64:
        launch_scale<int64_t>(ptr, count, factor, s, max_blocks);
        break;
    case HCRT_U64:
        launch_scale<uint64_t>(ptr, count, factor, s, max_blocks);
        break;
    case HCRT_F16:
        launch_scale<f16_t>(ptr, count, factor, s, max_blocks);
        break;
    case HCRT_BF16:
        launch_scale<bf16_t>(ptr, count, factor, s, max_blocks);
        break;
    case HCRT_F32:
        launch_scale<float>(ptr, count, factor, s, max_blocks);
        break;
    default:
        launch_scale<double>(ptr, count, factor, s, max_blocks);
        break;
    }
    return (int)HCRT_GPU_LAUNCH_ERROR();
}
