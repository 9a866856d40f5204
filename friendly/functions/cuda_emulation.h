// Just enough CUDA for a kernel source to compile with g++ and run on the CPU, so kernels are
// checked on machines without a GPU:
//   g++ -std=c++20 -pthread -include friendly/functions/cuda_emulation.h -x c++ kernels.cu \
//       driver.cpp
// Blocks run one after another; inside a block every CUDA thread is a host thread, and
// __syncthreads is a barrier across them. Shared arrays become function statics, which is
// correct because only one block is alive at a time. Warp-level intrinsics are not provided.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace cuda_emulation {
inline thread_local dim3 thread_index;
inline thread_local dim3 block_index;
inline dim3 block_size;
inline dim3 grid_size;
inline std::barrier<>* block_barrier = nullptr;

// Run kernel(args...) over the grid, like kernel<<<grid, block>>>(args...) followed by a
// device synchronisation.
template <class Kernel, class... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    const unsigned threads = block.x * block.y * block.z;
    grid_size = grid;
    block_size = block;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                std::barrier<> barrier(threads);
                block_barrier = &barrier;
                std::vector<std::thread> pool;
                pool.reserve(threads);
                for (unsigned t = 0; t < threads; ++t)
                    pool.emplace_back([=, &barrier] {
                        block_index = dim3(bx, by, bz);
                        thread_index = dim3(t % block.x, (t / block.x) % block.y,
                                            t / (block.x * block.y));
                        kernel(args...);
                        barrier.arrive_and_drop();  // a finished thread no longer holds others
                    });
                for (auto& thread : pool) thread.join();
                block_barrier = nullptr;
            }
}
}  // namespace cuda_emulation

#define threadIdx (::cuda_emulation::thread_index)
#define blockIdx (::cuda_emulation::block_index)
#define blockDim (::cuda_emulation::block_size)
#define gridDim (::cuda_emulation::grid_size)

inline void __syncthreads() { cuda_emulation::block_barrier->arrive_and_wait(); }

// Returns the old value, like CUDA's atomicAdd.
template <class T>
inline T atomicAdd(T* address, T value) {
    return std::atomic_ref<T>(*address).fetch_add(value);
}
