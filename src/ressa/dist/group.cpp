// c10d process group setup, bucketed all-reduce and batch sharding (see group.h).
// Built without the precompiled <torch/torch.h> (CMakeLists.txt): it needs only ATen and c10d,
// and the c10d Gloo header is only visible with USE_C10D_GLOO defined.
#include "ressa/dist/group.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef RESSA_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>

#include "ressa/core/error.h"

namespace ressa::dist {

namespace {
// Integer environment variable, or `fallback` when unset; a set but malformed value is an error.
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  RESSA_CHECK_ARG(end && *end == '\0' && x >= 0 && x < (1L << 30), "[dist] environment variable ", name, "='", v,
                  "' is not a non-negative integer");
  return static_cast<int>(x);
}
std::chrono::milliseconds ms(double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000.0)); }
bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}
}  // namespace

DistOptions DistOptions::from_env() {
  DistOptions o;
  // Slurm (srun) sets these for every task; torchrun-style variables win when both are set.
  o.world_size = env_int("SLURM_NTASKS", o.world_size);
  o.rank = env_int("SLURM_PROCID", o.rank);
  o.local_rank = env_int("SLURM_LOCALID", o.local_rank);
  o.local_world_size = env_int("SLURM_NTASKS_PER_NODE", o.local_world_size);
  o.world_size = env_int("WORLD_SIZE", o.world_size);
  o.rank = env_int("RANK", o.rank);
  o.local_rank = env_int("LOCAL_RANK", o.local_rank);
  o.local_world_size = env_int("LOCAL_WORLD_SIZE", o.local_world_size);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.master_addr = a;
  o.master_port = env_int("MASTER_PORT", o.master_port);
  return o;
}

void DistOptions::validate() const {
  RESSA_CHECK_ARG(world_size >= 1, "[dist] world size must be >= 1, got ", world_size);
  RESSA_CHECK_ARG(rank >= 0 && rank < world_size, "[dist] rank must be in [0, ", world_size, "), got ", rank);
  RESSA_CHECK_ARG(local_rank >= 0, "[dist] local rank must be >= 0, got ", local_rank);
  RESSA_CHECK_ARG(local_world_size >= 1, "[dist] local world size must be >= 1, got ", local_world_size);
  RESSA_CHECK_ARG(!master_addr.empty(), "[dist] MASTER_ADDR is empty");
  RESSA_CHECK_ARG(master_port > 0 && master_port < 65536, "[dist] MASTER_PORT must be in 1..65535, got ", master_port);
  RESSA_CHECK_ARG(timeout_s > 0, "[dist] --dist-timeout must be > 0 seconds, got ", timeout_s);
  RESSA_CHECK_ARG(root_wait_s > 0, "[dist] rank-0 wait must be > 0 seconds, got ", root_wait_s);
  RESSA_CHECK_ARG(bucket_bytes > 0, "[dist] bucket size must be > 0 bytes, got ", bucket_bytes);
}

struct Group::Impl {
  c10::intrusive_ptr<c10d::Store> store;     // TCPStore (rank 0 serves it)
  c10::intrusive_ptr<c10d::ProcessGroup> pg;  // Gloo or NCCL
};

namespace {
// Runs one c10d call; turns its exceptions (c10::Error with a backtrace, gloo's IoException)
// into one line naming the rank and the operation.
template <typename F>
void guarded(const DistOptions& o, const std::string& what, F&& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    fail("[dist] rank ", o.rank, "/", o.world_size, ": ", what, " failed (a peer process died, or did not answer within ",
         o.timeout_s, " s; see --dist-timeout): ", e.what_without_backtrace());
  } catch (const std::exception& e) {
    fail("[dist] rank ", o.rank, "/", o.world_size, ": ", what, " failed (a peer process died, or did not answer within ",
         o.timeout_s, " s; see --dist-timeout): ", e.what());
  }
}

// Consecutive tensors of one dtype, at most `bytes` per bucket (a larger tensor gets its own).
std::vector<std::vector<at::Tensor>> make_buckets(const std::vector<at::Tensor>& ts, int64_t bytes) {
  std::vector<std::vector<at::Tensor>> out;
  int64_t filled = 0;
  for (const auto& t : ts) {
    const int64_t b = t.numel() * static_cast<int64_t>(t.element_size());
    if (out.empty() || out.back().front().scalar_type() != t.scalar_type() || filled + b > bytes) {
      out.emplace_back();
      filled = 0;
    }
    out.back().push_back(t);
    filled += b;
  }
  return out;
}
}  // namespace

Group::Group(const DistOptions& opts, c10::Device device) : opts_(opts), impl_(std::make_unique<Impl>()) {
  opts_.validate();
  guarded(opts_, "rendezvous with rank 0 at " + opts_.master_addr + ":" + std::to_string(opts_.master_port), [&] {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(opts_.master_port);
    so.isServer = opts_.rank == 0;
    so.numWorkers = static_cast<size_t>(opts_.world_size);
    so.waitWorkers = true;
    so.timeout = ms(opts_.timeout_s);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(opts_.master_addr, so);
    impl_->store = c10::make_intrusive<c10d::PrefixStore>("ressa", tcp);
  });
  if (device.is_cuda()) {
#ifdef RESSA_WITH_NCCL
    guarded(opts_, "NCCL process group setup", [&] {
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = ms(opts_.timeout_s);
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, opts_.rank, opts_.world_size, no);
    });
    backend_ = "nccl";
#else
    fail_arg("[dist] --device ", device.str(), " with ", opts_.world_size,
             " processes needs ProcessGroupNCCL, and this ressa was built without NCCL (a CPU libtorch)");
#endif
  } else {
#ifdef USE_C10D_GLOO
    guarded(opts_, "Gloo process group setup", [&] {
      auto go = c10d::ProcessGroupGloo::Options::create(ms(opts_.timeout_s));
      // The interface Gloo binds: GLOO_SOCKET_IFNAME as torch.distributed does; loopback for a
      // one-machine job; otherwise the address this host's name resolves to.
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (is_loopback(opts_.master_addr))
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      go->threads = 2;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, opts_.rank, opts_.world_size, go);
    });
    backend_ = "gloo";
#else
    fail_arg("[dist] ", opts_.world_size, " processes need ProcessGroupGloo, and this ressa was built without libgloo");
#endif
  }
}

Group::~Group() = default;

void Group::allreduce_sum(at::Tensor& t, const char* what) {
  guarded(opts_, what, [&] {
    std::vector<at::Tensor> v{t};
    impl_->pg->allreduce(v)->wait();
  });
}

void Group::allreduce_gradients(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> grads;
  grads.reserve(params.size());
  for (const auto& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.grad());
  }
  auto buckets = make_buckets(grads, opts_.bucket_bytes);
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  guarded(opts_, "gradient all-reduce", [&] {
    // All buckets are queued before the first wait, so Gloo's worker threads overlap them.
    for (auto& b : buckets) {
      std::vector<at::Tensor> parts;
      for (auto& g : b) parts.push_back(g.reshape({-1}));
      std::vector<at::Tensor> one{at::cat(parts)};
      flats.push_back(one[0]);
      works.push_back(impl_->pg->allreduce(one));
    }
    for (auto& w : works) w->wait();
  });
  for (size_t i = 0; i < buckets.size(); ++i) {
    int64_t off = 0;
    for (auto& g : buckets[i]) {
      g.copy_(flats[i].narrow(0, off, g.numel()).view_as(g));
      off += g.numel();
    }
  }
}

void Group::broadcast_from_root(const std::vector<at::Tensor>& tensors) {
  at::NoGradGuard ng;
  auto buckets = make_buckets(tensors, opts_.bucket_bytes);
  guarded(opts_, "parameter broadcast from rank 0", [&] {
    for (auto& b : buckets) {
      std::vector<at::Tensor> parts;
      for (auto& t : b) parts.push_back(t.detach().reshape({-1}));
      std::vector<at::Tensor> one{at::cat(parts)};
      impl_->pg->broadcast(one)->wait();
      int64_t off = 0;
      for (auto& t : b) {
        t.detach().copy_(one[0].narrow(0, off, t.numel()).view_as(t));
        off += t.numel();
      }
    }
  });
}

void Group::barrier(const char* what) {
  guarded(opts_, what, [&] { impl_->pg->barrier()->wait(); });
}

void Group::root_done(const std::string& tag) {
  if (opts_.world_size == 1) return;
  // The long wait goes through the store (its own timeout); the barrier after it keeps rank 0
  // (the store's host) alive until every rank has seen the key.
  const std::string key = "root_done/" + tag;
  try {
    if (is_root()) {
      impl_->store->set(key, std::vector<uint8_t>{1});
    } else {
      impl_->store->wait({key}, ms(opts_.root_wait_s));
    }
  } catch (const c10::Error& e) {
    fail("[dist] rank ", opts_.rank, "/", opts_.world_size, ": waiting for rank 0 to finish ", tag,
         " failed (rank 0 died, or took longer than ", opts_.root_wait_s, " s): ", e.what_without_backtrace());
  } catch (const std::exception& e) {
    fail("[dist] rank ", opts_.rank, "/", opts_.world_size, ": waiting for rank 0 to finish ", tag,
         " failed (rank 0 died, or took longer than ", opts_.root_wait_s, " s): ", e.what());
  }
  barrier(("barrier after rank 0's " + tag).c_str());
}

std::vector<int64_t> shard_indices(const std::vector<int64_t>& global, int rank, int world) {
  RESSA_CHECK_ARG(world >= 1 && rank >= 0 && rank < world, "[shard_indices] rank ", rank, " of ", world);
  const int64_t n = static_cast<int64_t>(global.size());
  const int64_t base = n / world, extra = n % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  const int64_t len = base + (rank < extra ? 1 : 0);
  return std::vector<int64_t>(global.begin() + begin, global.begin() + begin + len);
}

}  // namespace ressa::dist
