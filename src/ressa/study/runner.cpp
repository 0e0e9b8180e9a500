// Process pool for the study graph (see runner.h).
#include "ressa/study/runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "ressa/core/cpu_info.h"
#include "ressa/core/error.h"
#include "ressa/study/cache.h"

namespace fs = std::filesystem;

namespace ressa::study {

std::string job_log_path(const Job& j) { return j.out + ".log"; }

namespace {

// The most useful line of a failed job's log: its last "error:" line, else its last line.
std::string failure_reason(const Job& j, int status) {
  std::ifstream in(job_log_path(j));
  std::string line, last, err;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    last = line;
    if (line.rfind("error:", 0) == 0) err = line;
  }
  std::ostringstream os;
  if (WIFSIGNALED(status)) os << "killed by signal " << WTERMSIG(status);
  else os << "exit " << WEXITSTATUS(status);
  os << ": " << (err.empty() ? last : err) << " (log " << job_log_path(j) << ")";
  return os.str();
}

// Clears what an earlier run of `j` left (keeping a checkpoint only when that run was this
// version's own unfinished one), records the start, and starts the child.
pid_t spawn(const std::string& binary, const JobGraph& graph, const Job& j, const std::string& version,
            const std::string& cpu) {
  const auto previous = read_job_record(j);
  remove_job_outputs(j, previous && !previous->finished && previous->ressa_version == version);
  write_job_record(j, new_job_record(graph, j, version, cpu));
  std::vector<std::string> args = j.args;
  if (!j.resume_dir.empty() && fs::exists(j.resume_dir)) args.push_back("--resume");
  const std::string log = job_log_path(j);
  pid_t pid = fork();
  RESSA_CHECK(pid >= 0, "[reproduce] fork failed for job ", j.id);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // a killed study takes its children with it
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

RunSummary run_jobs(const JobGraph& graph, const RunOptions& opts) {
  RESSA_CHECK_ARG(opts.jobs >= 1, "[reproduce] --jobs must be >= 1");
  const auto t0 = std::chrono::steady_clock::now();
  RunSummary sum;
  sum.version = opts.version;
  const std::string cpu = cpu_model_name();
  enum class St { Pending, Running, Done, Failed };
  std::map<std::string, St> st;
  double total_cost = 0, done_cost = 0, ran_cost = 0;
  const auto decisions = decide_cache(graph, opts.version, opts.reuse_older);
  for (const auto& id : graph.order()) {
    const Job& j = graph.at(id);
    const CacheDecision& d = decisions.at(id);
    const bool cached = d.use != CacheUse::Run;
    st[id] = cached ? St::Done : St::Pending;
    ++sum.total;
    if (cached) ++sum.cached;
    else total_cost += j.cost_s;
    if (d.use == CacheUse::ReuseOlder) sum.reused_older[id] = d.version;
  }
  std::map<pid_t, std::string> running;
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto last_report = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto report = [&](bool final) {
    if (!opts.progress) return;
    auto now = std::chrono::steady_clock::now();
    if (!final && std::chrono::duration<double>(now - last_report).count() < 5) return;
    last_report = now;
    int done = 0, failed = 0;
    for (auto& kv : st) done += kv.second == St::Done, failed += kv.second == St::Failed;
    std::ostringstream os;
    os << "reproduce: " << done << "/" << sum.total << " jobs";
    if (failed) os << " (" << failed << " failed)";
    os << ", elapsed " << format_duration(elapsed());
    // ETA: remaining estimated cost / parallelism, scaled by how the estimates compared so far.
    const double scale = ran_cost > 0 && done_cost > 0 ? elapsed() / (done_cost / opts.jobs) : 1.0;
    const double remaining = std::max(0.0, total_cost - done_cost);
    if (!final) os << ", eta " << format_duration(remaining / opts.jobs * std::max(0.2, std::min(scale, 5.0)));
    if (!running.empty()) {
      os << ", running";
      for (auto& kv : running) os << " " << kv.second;
    }
    opts.progress(os.str(), final);
  };
  while (true) {
    // Start every ready job while slots are free.
    for (const auto& id : graph.order()) {
      if (static_cast<int>(running.size()) >= opts.jobs) break;
      if (st[id] != St::Pending) continue;
      const Job& j = graph.at(id);
      bool ready = true, dep_failed = false;
      for (const auto& d : j.deps) {
        if (st[d] == St::Failed) dep_failed = true;
        if (st[d] != St::Done) ready = false;
      }
      if (dep_failed) {
        st[id] = St::Failed;
        sum.failed[id] = "not run: a job it depends on failed";
        done_cost += j.cost_s;
        continue;
      }
      if (!ready) continue;
      running[spawn(opts.binary, graph, j, opts.version, cpu)] = id;
      st[id] = St::Running;
    }
    if (running.empty()) {
      bool pending = false;
      for (auto& kv : st) pending |= kv.second == St::Pending;
      if (!pending) break;
      continue;  // dependents of failures were just marked; loop again
    }
    report(false);
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    RESSA_CHECK(pid > 0, "[reproduce] waitpid failed");
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const std::string id = it->second;
    running.erase(it);
    const Job& j = graph.at(id);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::exists(j.out);
    st[id] = ok ? St::Done : St::Failed;
    if (ok) {
      ++sum.ran;
      JobRecord rec = new_job_record(graph, j, opts.version, cpu);  // finish date; inputs as they were
      rec.finished = true;
      write_job_record(j, rec);
    } else {
      sum.failed[id] = failure_reason(j, status);
    }
    done_cost += j.cost_s;
    ran_cost += j.cost_s;
  }
  sum.seconds = elapsed();
  report(true);
  return sum;
}

}  // namespace ressa::study
