// Data-parallel process groups on PyTorch's c10d: rendezvous through a c10d::TCPStore (rank 0
// hosts it at MASTER_ADDR:MASTER_PORT), collectives through c10d::ProcessGroupGloo on CPU or
// c10d::ProcessGroupNCCL when built against a CUDA libtorch with NCCL. This is the one place
// for process-group setup, the bucketed gradient all-reduce and rank-sharded batch indices.
// The header stays free of c10d/gloo types (pimpl) so it costs nothing to include.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ressa::dist {

struct DistOptions {
  int world_size = 1;          // processes in the job (WORLD_SIZE)
  int rank = 0;                // this process, 0..world_size-1 (RANK)
  int local_rank = 0;          // this process on its node (LOCAL_RANK): picks cuda:<local_rank>
  int local_world_size = 1;    // processes on this node (LOCAL_WORLD_SIZE): splits the cores
  std::string master_addr = "127.0.0.1";  // host of rank 0's TCPStore (MASTER_ADDR)
  int master_port = 29500;     // its port (MASTER_PORT)
  double timeout_s = 60;       // rendezvous and per-collective timeout: a hung peer fails the job after this
  double root_wait_s = 3600;   // how long other ranks wait for rank-0-only work (validation, writing)
  int64_t bucket_bytes = 25 << 20;  // gradient all-reduce bucket size (as torch DDP's 25 MB default)

  // Fills the fields from WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
  // MASTER_PORT (torchrun, `ressa launch`, or Slurm's SLURM_NTASKS/SLURM_PROCID/SLURM_LOCALID
  // when WORLD_SIZE is unset); unset variables keep the defaults. Bad values: std::invalid_argument.
  static DistOptions from_env();
  void validate() const;  // throws std::invalid_argument naming the bad field
};

// A joined process group. Every collective throws std::runtime_error("[dist] rank R: ...") when a
// peer dies (its sockets close: at once) or stops answering (after timeout_s).
class Group {
 public:
  // Rendezvous with the other world_size-1 processes; blocks up to timeout_s.
  // device: CPU -> Gloo; CUDA -> NCCL (needs a CUDA+NCCL build, else std::invalid_argument).
  Group(const DistOptions& opts, c10::Device device);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return opts_.rank; }
  int size() const { return opts_.world_size; }
  bool is_root() const { return opts_.rank == 0; }
  const DistOptions& options() const { return opts_; }
  const std::string& backend() const { return backend_; }

  // In-place sum over all ranks of one tensor (any shape, on the group's device).
  void allreduce_sum(at::Tensor& t, const char* what);
  // Sums the .grad of every parameter over all ranks, several gradients flattened into one buffer
  // of at most bucket_bytes per all-reduce (all buckets in flight at once, then copied back).
  // A parameter without a gradient contributes zeros (and then has a zero gradient).
  void allreduce_gradients(const std::vector<at::Tensor>& params);
  // Copies rank 0's values of `tensors` into every rank's (in place, bucketed like the gradients).
  void broadcast_from_root(const std::vector<at::Tensor>& tensors);
  // All ranks wait for each other (timeout_s).
  void barrier(const char* what);
  // Work only rank 0 does (validation, checkpoints, outputs): rank 0 calls this when done, the
  // others block here until it has, up to root_wait_s; if rank 0 dies meanwhile they fail at once
  // (its TCPStore goes away). `tag` must be unique per call site and step.
  void root_done(const std::string& tag);

 private:
  struct Impl;
  DistOptions opts_;
  std::string backend_;
  std::unique_ptr<Impl> impl_;
};

// Rank `rank`'s part of a global batch: contiguous slices, the first (B % world) ranks one longer,
// so the concatenation over ranks 0..world-1 is `global` again.
std::vector<int64_t> shard_indices(const std::vector<int64_t>& global, int rank, int world);

}  // namespace ressa::dist
