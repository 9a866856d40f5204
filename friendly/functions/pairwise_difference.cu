// Pairwise Difference (thesis 3.2.3) without the (patches x P x P) difference tensor.
//
// For patch rows v[n, 0..P) and weights w[o, k] with k = i*P + j:
//   forward        y[n, o]  = sum_k w[o, k] * s(v[n, i] - v[n, j])            s = sigmoid
//   weight grad    gw[o, k] = sum_n gy[n, o] * s(v[n, i] - v[n, j])
//   patch grad     gv[n, r] = sum_j D[n, r, j] - sum_i D[n, i, r]             (thesis eq. 3.2)
//                  with D[n, i, j] = (sum_o gy[n, o] w[o, k]) * s'(v[n, i] - v[n, j])
// Every sigmoid is recomputed where it is needed; no kernel stores more than a tile of them.
//
// Defined in front of this source (friendly/functions/pd_kernels.py's defines(): prepended by
// the CuPy launcher, -D flags for nvcc and the CPU emulation):
//   PD_REAL     float or double
//   PD_QN       patches per thread (1..4): a block covers PD_BN = PD_TN * PD_QN patches
//   PD_QO       output tile factor (1..4): forward and weight-gradient blocks cover
//               PD_TO * PD_QO outputs
//   PD_THREADS  threads per block, in one dimension
//   PD_TN       threads along patches
//   PD_TO       threads along outputs, forward (one warp)
//   PD_KT       pairs k per forward step
//   PD_GK       pairs per block, weight gradient
//   PD_RT       reference elements r per block, patch gradient (one per lane)
//   PD_MC       partner elements per step, patch gradient
// Outputs written with atomicAdd must be zeroed before the launch. Indices into the (N, P) and
// (N, O) arrays are 32-bit (the launcher checks N*P and N*O < 2**31); indices into w and gw are
// 64-bit.

#if !defined(PD_REAL) || !defined(PD_QN) || !defined(PD_QO) || !defined(PD_THREADS) || \
    !defined(PD_TN) || !defined(PD_TO) || !defined(PD_KT) || !defined(PD_GK) ||          \
    !defined(PD_RT) || !defined(PD_MC)
#error "define PD_REAL, PD_QN, PD_QO and the block shape (pd_kernels.py defines())"
#endif

typedef PD_REAL real_t;

#define PD_BN (PD_TN * PD_QN)    // patches per block
#define PD_BO (PD_TO * PD_QO)    // outputs per block, forward
#define PD_KT_ROW (PD_KT + 4)    // forward tile row: 16-byte aligned, conflict-free 16-byte reads
#define PD_FW_LOADS (PD_KT * PD_BO / PD_THREADS)  // weights each thread loads per forward step
#define PD_GO (32 * PD_QO)       // outputs per block, weight gradient (2 * PD_QO per thread)
#define PD_GN 8                  // patches per step, weight gradient
#define PD_GW_SIGMOIDS (PD_GN * PD_GK / PD_THREADS)  // sigmoids each thread makes per step
#define PD_GW_GY_LOADS (PD_GN * PD_GO / PD_THREADS)  // output gradients each thread loads
#define PD_GW_BLOCKS_PER_SM (sizeof(PD_REAL) == 4 ? 2 : 1)  // float fits 128 registers, double not
#define PD_MC_ROW (PD_MC + 4)    // weight tile row: 16-byte aligned, conflict-free 16-byte reads
#define PD_OC 8                  // outputs per step, patch gradient
#define PD_GV_LOADS (PD_OC * PD_MC * PD_RT / PD_THREADS)  // weights each thread loads per step
#define PD_COL_PARTS (PD_THREADS / (PD_TN * PD_MC))  // threads per column sum, patch gradient

// What the thread layouts below rely on.
static_assert(PD_TN * PD_TO == PD_THREADS, "forward: a PD_TN x PD_TO grid of threads");
static_assert(PD_THREADS % PD_KT == 0 && PD_KT % 4 == 0 && PD_KT * PD_BO % PD_THREADS == 0,
              "forward: whole tile rows per fill, 16-byte reads along the pairs");
static_assert(PD_THREADS == 256 && PD_GK == 128 && PD_GO == PD_BO,
              "pd_grad_w: 16 x 16 threads, each 8 pairs x 2 * PD_QO outputs");
static_assert(PD_RT * PD_TN == PD_THREADS && PD_MC * PD_RT == PD_THREADS && PD_MC % 4 == 0,
              "pd_grad_patches: one element per lane, one weight per thread and output step");
static_assert(PD_COL_PARTS >= 1 && PD_RT % PD_COL_PARTS == 0,
              "pd_grad_patches: column sums split evenly over threads");

__device__ __forceinline__ float pd_exp(float x) { return expf(x); }
__device__ __forceinline__ double pd_exp(double x) { return exp(x); }

__device__ __forceinline__ real_t pd_sigmoid(real_t d) {
    return (real_t)1 / ((real_t)1 + pd_exp(-d));
}

// Forward, a GEMM y = S w^T whose left operand S[n, k] is generated on the fly, split over k.
// Block (bx, by, bz) owns outputs [bx*BO, +BO), patches [by*BN, +BN) and pairs
// [bz*k_chunk, +k_chunk): every weight is read from global memory once per patch tile and used
// for all BN patches. Both tiles are stored one row per output / patch, so the sums read four
// consecutive pairs with one 16-byte shared load. Writes: atomicAdd of its partial sums into
// y[n, o] (y zeroed first).
extern "C" __global__ void __launch_bounds__(PD_THREADS)
pd_forward(const real_t* __restrict__ v, const real_t* __restrict__ w, real_t* __restrict__ y,
           int n_patches, int p, int n_out, int k_chunk) {
    alignas(16) __shared__ real_t w_tile[PD_BO][PD_KT_ROW];
    alignas(16) __shared__ real_t s_tile[PD_BN][PD_KT_ROW];

    const int t = (int)threadIdx.x;
    const int to = t % PD_TO, tn = t / PD_TO;
    const int o0 = (int)blockIdx.x * PD_BO, n0 = (int)blockIdx.y * PD_BN;
    const int k_total = p * p;
    const int k_begin = (int)blockIdx.z * k_chunk;
    const int k_end = k_begin + k_chunk < k_total ? k_begin + k_chunk : k_total;

    // Every tile element a thread fills has the pair kk = t % KT (THREADS is a multiple of KT),
    // so a warp reads 32 consecutive weights of one row and its pair (i, j) advances by KT per
    // step without a division.
    const int my_kk = t % PD_KT, my_row = t / PD_KT;
    const int row_stride = PD_THREADS / PD_KT;
    int my_i = (k_begin + my_kk) / p, my_j = (k_begin + my_kk) % p;
    real_t w_next[PD_FW_LOADS];

    real_t acc[PD_QN][PD_QO];
    for (int q = 0; q < PD_QN; ++q)
        for (int m = 0; m < PD_QO; ++m) acc[q][m] = 0;

    // weights of the step starting at pair k0 (zero outside the problem)
    #define PD_LOAD_FORWARD_W(k0)                                                      \
        for (int r = 0; r < PD_FW_LOADS; ++r) {                                        \
            const int o = o0 + my_row + row_stride * r;                                \
            const int k = (k0) + my_kk;                                                \
            w_next[r] = (o < n_out && k < k_end) ? w[(long long)o * k_total + k] : 0;  \
        }

    if (k_begin < k_end) { PD_LOAD_FORWARD_W(k_begin) }
    for (int k0 = k_begin; k0 < k_end; k0 += PD_KT) {
        __syncthreads();  // the previous step has finished reading the tiles
        for (int r = 0; r < PD_FW_LOADS; ++r) w_tile[my_row + row_stride * r][my_kk] = w_next[r];
        const bool k_ok = k0 + my_kk < k_end;
        for (int nn = my_row; nn < PD_BN; nn += row_stride) {
            const int n = n0 + nn;
            s_tile[nn][my_kk] = (k_ok && n < n_patches)
                ? pd_sigmoid(v[n * p + my_i] - v[n * p + my_j]) : (real_t)0;
        }
        my_j += PD_KT;
        while (my_j >= p) { my_j -= p; ++my_i; }
        __syncthreads();
        if (k0 + PD_KT < k_end) { PD_LOAD_FORWARD_W(k0 + PD_KT) }  // in flight during the sums
        #pragma unroll
        for (int kk = 0; kk < PD_KT; kk += 4) {
            real_t sv[PD_QN][4], wv[PD_QO][4];
            for (int q = 0; q < PD_QN; ++q)
                for (int u = 0; u < 4; ++u) sv[q][u] = s_tile[tn + PD_TN * q][kk + u];
            for (int m = 0; m < PD_QO; ++m)
                for (int u = 0; u < 4; ++u) wv[m][u] = w_tile[to + PD_TO * m][kk + u];
            for (int q = 0; q < PD_QN; ++q)
                for (int m = 0; m < PD_QO; ++m)
                    for (int u = 0; u < 4; ++u) acc[q][m] += sv[q][u] * wv[m][u];
        }
    }
    #undef PD_LOAD_FORWARD_W

    for (int q = 0; q < PD_QN; ++q) {
        const int n = n0 + tn + PD_TN * q;
        for (int m = 0; m < PD_QO; ++m) {
            const int o = o0 + to + PD_TO * m;
            if (n < n_patches && o < n_out && k_begin < k_end)
                atomicAdd(&y[n * n_out + o], acc[q][m]);
        }
    }
}

// Weight gradient, gw = gy^T S with S generated on the fly.
// Block (bx, by) owns pairs [bx*GK, +GK) and outputs [by*GO, +GO) and loops over all patches,
// GN at a time. Thread (tk, to) = (t % 16, t / 16) holds an 8-pair x 2*QO-output tile of gw in
// registers: pairs 4tk + u and 64 + 4tk + u (u < 4), outputs QO*to + m and 16*QO + QO*to + m
// (m < QO), so its shared reads are 16-byte vectors and every sigmoid is computed once per
// block. The global reads of the next patches are in flight during the sums.
// Writes: gw[o, k] for its tile, each element exactly once (no zeroing needed).
extern "C" __global__ void __launch_bounds__(PD_THREADS, PD_GW_BLOCKS_PER_SM)
pd_grad_w(const real_t* __restrict__ v, const real_t* __restrict__ gy, real_t* __restrict__ gw,
          int n_patches, int p, int n_out) {
    alignas(16) __shared__ real_t s_tile[PD_GN][PD_GK];
    alignas(16) __shared__ real_t g_tile[PD_GN][PD_GO];

    const int t = (int)threadIdx.x;
    const int tk = t % 16, to = t / 16;
    const int k0 = (int)blockIdx.x * PD_GK, o0 = (int)blockIdx.y * PD_GO;
    const int k_total = p * p;

    // Fills: the thread's sigmoids are for pair my_kk and patches my_nn + (THREADS/GK)*r; its
    // output gradients are tile elements e = t + THREADS*r of g_tile.
    const int my_kk = t % PD_GK, my_nn = t / PD_GK;
    const int my_k = k0 + my_kk;
    const bool k_ok = my_k < k_total;
    const int my_i = k_ok ? my_k / p : 0;
    const int my_j = k_ok ? my_k - my_i * p : 0;
    real_t vi_next[PD_GW_SIGMOIDS], vj_next[PD_GW_SIGMOIDS], g_next[PD_GW_GY_LOADS];

    // raw inputs of the step starting at patch n_step (zero outside the problem)
    #define PD_LOAD_GRAD_W(n_step)                                                      \
        for (int r = 0; r < PD_GW_SIGMOIDS; ++r) {                                      \
            const int n = (n_step) + my_nn + (PD_THREADS / PD_GK) * r;                  \
            const bool ok = k_ok && n < n_patches;                                      \
            vi_next[r] = ok ? v[n * p + my_i] : (real_t)0;                   \
            vj_next[r] = ok ? v[n * p + my_j] : (real_t)0;                   \
        }                                                                               \
        for (int r = 0; r < PD_GW_GY_LOADS; ++r) {                                      \
            const int e = t + PD_THREADS * r;                                           \
            const int n = (n_step) + e / PD_GO, o = o0 + e % PD_GO;                     \
            g_next[r] = (n < n_patches && o < n_out) ? gy[n * n_out + o]     \
                                                     : (real_t)0;                       \
        }

    real_t acc[2 * PD_QO][8];
    for (int m = 0; m < 2 * PD_QO; ++m)
        for (int u = 0; u < 8; ++u) acc[m][u] = 0;

    PD_LOAD_GRAD_W(0)
    for (int n0 = 0; n0 < n_patches; n0 += PD_GN) {
        __syncthreads();  // the previous step has finished reading the tiles
        for (int r = 0; r < PD_GW_SIGMOIDS; ++r)  // sigmoid(0) = 1/2 outside: gy is 0 there
            s_tile[my_nn + (PD_THREADS / PD_GK) * r][my_kk] = pd_sigmoid(vi_next[r] - vj_next[r]);
        for (int r = 0; r < PD_GW_GY_LOADS; ++r) {
            const int e = t + PD_THREADS * r;
            g_tile[e / PD_GO][e % PD_GO] = g_next[r];
        }
        __syncthreads();
        if (n0 + PD_GN < n_patches) { PD_LOAD_GRAD_W(n0 + PD_GN) }
        #pragma unroll
        for (int nn = 0; nn < PD_GN; ++nn) {
            real_t sv[8], gv[2 * PD_QO];
            for (int u = 0; u < 4; ++u) {
                sv[u] = s_tile[nn][4 * tk + u];
                sv[4 + u] = s_tile[nn][64 + 4 * tk + u];
            }
            for (int m = 0; m < PD_QO; ++m) {
                gv[m] = g_tile[nn][PD_QO * to + m];
                gv[PD_QO + m] = g_tile[nn][16 * PD_QO + PD_QO * to + m];
            }
            for (int m = 0; m < 2 * PD_QO; ++m)
                for (int u = 0; u < 8; ++u) acc[m][u] += gv[m] * sv[u];
        }
    }
    #undef PD_LOAD_GRAD_W

    for (int m = 0; m < 2 * PD_QO; ++m) {
        const int o = o0 + (m < PD_QO ? PD_QO * to + m : 16 * PD_QO + PD_QO * to + m - PD_QO);
        for (int u = 0; u < 8; ++u) {
            const int k = k0 + (u < 4 ? 4 * tk + u : 64 + 4 * tk + u - 4);
            if (o < n_out && k < k_total) gw[(long long)o * k_total + k] = acc[m][u];
        }
    }
}

// Patch gradient (thesis eq. 3.2). Block (bx, by, bz) owns reference elements i in
// [bx*RT, +RT), patches [by*BN, +BN) and partners j in [bz*j_chunk, +j_chunk); lane tr holds
// i = bx*RT + tr and, per step of MC partners, G[n, i, j] = sum_o gy[n, o] w[o, i*P + j] in
// registers; the weight tile holds each lane's MC partners contiguously, so they come in 16-byte
// shared reads. Row sums of D stay in registers; column sums go through shared memory.
// Writes: atomicAdd of +sum_j D into gv[n, i] and -sum_i D into gv[n, j] (gv zeroed first).
extern "C" __global__ void pd_grad_patches(const real_t* __restrict__ v,
                                           const real_t* __restrict__ w,
                                           const real_t* __restrict__ gy,
                                           real_t* __restrict__ gv, int n_patches, int p,
                                           int n_out, int j_chunk) {
    alignas(16) __shared__ real_t w_tile[PD_OC][PD_RT][PD_MC_ROW];
    __shared__ real_t g_tile[PD_OC][PD_BN];
    __shared__ real_t col_tile[PD_TN][PD_MC][PD_RT + 1];

    const int t = (int)threadIdx.x;
    const int tr = t % PD_RT, tn = t / PD_RT;
    const int i0 = (int)blockIdx.x * PD_RT, n0 = (int)blockIdx.y * PD_BN;
    const int j_begin = (int)blockIdx.z * j_chunk;
    const int j_end = j_begin + j_chunk < p ? j_begin + j_chunk : p;
    const int k_total = p * p;
    const int i = i0 + tr;

    // Weight loads: thread t fetches partner jj = t % MC of row ii = (t / MC) % RT for the
    // outputs oo = r, r = 0..OC-1 (a warp reads 4 rows x 8 consecutive weights).
    const int load_jj = t % PD_MC;
    const int load_ii = (t / PD_MC) % PD_RT;
    real_t w_next[PD_GV_LOADS];

    #define PD_LOAD_GRAD_W(j0, o_base)                                                    \
        for (int r = 0; r < PD_GV_LOADS; ++r) {                                           \
            const int o = (o_base) + r;                                                   \
            const int ii = i0 + load_ii, jj = (j0) + load_jj;                             \
            w_next[r] = (o < n_out && ii < p && jj < j_end)                               \
                ? w[(long long)o * k_total + ii * p + jj] : (real_t)0;                    \
        }

    real_t vi[PD_QN], row[PD_QN];
    for (int q = 0; q < PD_QN; ++q) {
        const int n = n0 + tn + PD_TN * q;
        vi[q] = (n < n_patches && i < p) ? v[n * p + i] : (real_t)0;
        row[q] = 0;
    }

    if (j_begin < j_end) { PD_LOAD_GRAD_W(j_begin, 0) }
    for (int j0 = j_begin; j0 < j_end; j0 += PD_MC) {
        real_t g[PD_QN][PD_MC];
        for (int q = 0; q < PD_QN; ++q)
            for (int mm = 0; mm < PD_MC; ++mm) g[q][mm] = 0;

        for (int o_base = 0; o_base < n_out; o_base += PD_OC) {
            __syncthreads();  // the tiles are free again
            for (int r = 0; r < PD_GV_LOADS; ++r) w_tile[r][load_ii][load_jj] = w_next[r];
            for (int e = t; e < PD_OC * PD_BN; e += PD_THREADS) {
                const int nn = e % PD_BN, oo = e / PD_BN;
                const int n = n0 + nn, o = o_base + oo;
                g_tile[oo][nn] = (n < n_patches && o < n_out)
                    ? gy[n * n_out + o] : (real_t)0;
            }
            __syncthreads();
            // the next step's weights are in flight during the sums
            int next_o = o_base + PD_OC, next_j = j0;
            if (next_o >= n_out) { next_o = 0; next_j = j0 + PD_MC; }
            if (next_j < j_end) { PD_LOAD_GRAD_W(next_j, next_o) }
            #pragma unroll
            for (int oo = 0; oo < PD_OC; ++oo) {
                real_t wv[PD_MC];
                for (int mm = 0; mm < PD_MC; ++mm) wv[mm] = w_tile[oo][tr][mm];
                for (int q = 0; q < PD_QN; ++q) {
                    const real_t gq = g_tile[oo][tn + PD_TN * q];
                    for (int mm = 0; mm < PD_MC; ++mm) g[q][mm] += gq * wv[mm];
                }
            }
        }

        // D = G * s'(v_i - v_j); s' = s (1 - s)
        for (int q = 0; q < PD_QN; ++q) {
            const int n = n0 + tn + PD_TN * q;
            for (int mm = 0; mm < PD_MC; ++mm) {
                const int j = j0 + mm;
                real_t d = 0;
                if (n < n_patches && i < p && j < j_end) {
                    const real_t s = pd_sigmoid(vi[q] - v[n * p + j]);
                    d = g[q][mm] * s * ((real_t)1 - s);
                }
                row[q] += d;
                g[q][mm] = d;
            }
        }
        // column sums over the block's RT reference elements, one patch subset q at a time:
        // every thread adds one of the PD_COL_PARTS slices of a column (conflict-free reads)
        for (int q = 0; q < PD_QN; ++q) {
            __syncthreads();
            for (int mm = 0; mm < PD_MC; ++mm) col_tile[tn][mm][tr] = g[q][mm];
            __syncthreads();
            const int part = t % PD_COL_PARTS, cm = (t / PD_COL_PARTS) % PD_MC;
            const int cn = t / (PD_COL_PARTS * PD_MC);
            const int n = n0 + cn + PD_TN * q, j = j0 + cm;
            real_t sum = 0;
            for (int rr = part * (PD_RT / PD_COL_PARTS); rr < (part + 1) * (PD_RT / PD_COL_PARTS);
                 ++rr)
                sum += col_tile[cn][cm][rr];
            if (n < n_patches && j < j_end) atomicAdd(&gv[n * p + j], -sum);
        }
    }
    #undef PD_LOAD_GRAD_W

    for (int q = 0; q < PD_QN; ++q) {
        const int n = n0 + tn + PD_TN * q;
        if (n < n_patches && i < p && j_begin < j_end)
            atomicAdd(&gv[n * p + i], row[q]);
    }
}
