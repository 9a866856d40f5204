// Runs one Pairwise Difference kernel on the CPU through friendly/functions/cuda_emulation.h.
// Built by tests/test_pd_kernels_emulated.py with the kernel source named by PD_SOURCE and the
// macros of friendly/functions/pd_kernels.py's defines() (element type, tile factors, block
// shape):
//   g++ -std=c++20 -pthread -include friendly/functions/cuda_emulation.h -DPD_REAL=double \
//       -DPD_QN=.. -DPD_QO=.. -DPD_THREADS=.. (...) \
//       -DPD_SOURCE='"friendly/functions/pairwise_difference.cu"' tests/pd_emulated_driver.cpp
// Usage: driver KERNEL GX GY GZ N P O CHUNK DIR
//   KERNEL is forward | grad_w | grad_patches; DIR holds v.bin (N*P), w.bin (O*P*P) and
//   gy.bin (N*O) as raw PD_REAL; the result (zero-initialised, as the Python launcher does) is
//   written to DIR/out.bin.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include PD_SOURCE

static std::vector<real_t> read_array(const std::string& path, size_t count) {
    std::vector<real_t> data(count);
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f || std::fread(data.data(), sizeof(real_t), count, f) != count) {
        std::fprintf(stderr, "cannot read %zu values from %s\n", count, path.c_str());
        std::exit(2);
    }
    std::fclose(f);
    return data;
}

static void write_array(const std::string& path, const std::vector<real_t>& data) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(data.data(), sizeof(real_t), data.size(), f) != data.size()) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        std::exit(2);
    }
    std::fclose(f);
}

int main(int argc, char** argv) {
    if (argc != 10) {
        std::fprintf(stderr, "usage: %s KERNEL GX GY GZ N P O CHUNK DIR\n", argv[0]);
        return 2;
    }
    const std::string kernel = argv[1];
    const dim3 grid(std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]));
    const int n = std::atoi(argv[5]), p = std::atoi(argv[6]), o = std::atoi(argv[7]);
    const int chunk = std::atoi(argv[8]);
    const std::string dir = argv[9];
    const dim3 block(PD_THREADS);
    const size_t k = (size_t)p * p;

    const std::vector<real_t> v = read_array(dir + "/v.bin", (size_t)n * p);
    std::vector<real_t> out;
    if (kernel == "forward") {
        const std::vector<real_t> w = read_array(dir + "/w.bin", o * k);
        out.assign((size_t)n * o, 0);
        cuda_emulation::launch(grid, block, pd_forward, v.data(), w.data(), out.data(), n, p, o,
                               chunk);
    } else if (kernel == "grad_w") {
        const std::vector<real_t> gy = read_array(dir + "/gy.bin", (size_t)n * o);
        out.assign(o * k, 0);
        cuda_emulation::launch(grid, block, pd_grad_w, v.data(), gy.data(), out.data(), n, p, o);
    } else if (kernel == "grad_patches") {
        const std::vector<real_t> w = read_array(dir + "/w.bin", o * k);
        const std::vector<real_t> gy = read_array(dir + "/gy.bin", (size_t)n * o);
        out.assign((size_t)n * p, 0);
        cuda_emulation::launch(grid, block, pd_grad_patches, v.data(), w.data(), gy.data(),
                               out.data(), n, p, o, chunk);
    } else {
        std::fprintf(stderr, "unknown kernel %s\n", kernel.c_str());
        return 2;
    }
    write_array(dir + "/out.bin", out);
    return 0;
}
