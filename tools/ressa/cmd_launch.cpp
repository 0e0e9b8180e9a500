// `ressa launch --nproc N -- <subcommand and flags>`: runs N local processes of this binary as
// one data-parallel job (like torchrun on one node). Each child gets WORLD_SIZE, RANK,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT; their stdout and
// stderr lines come out prefixed with "[rank R] "; when one exits with a failure the others are
// terminated (SIGTERM, then SIGKILL after a grace period) and launch fails with one error line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>

#include "common.h"
#include "ressa/core/error.h"

namespace ressa::cli {

namespace {

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back, close).
int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  RESSA_CHECK(s >= 0, "[launch] socket: ", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  const bool ok = bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(s);
  RESSA_CHECK(ok, "[launch] cannot find a free port on 127.0.0.1: ", std::strerror(errno));
  return ntohs(a.sin_port);
}

volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

struct Child {
  int rank = 0;
  pid_t pid = -1;
  int fd[2] = {-1, -1};     // read ends of the child's stdout, stderr
  std::string partial[2];   // bytes after the last newline
  bool exited = false;
  int status = 0;
};

// Writes every complete line of `buf` (plus the rest when `flush`) with the rank prefix.
void emit(Child& c, int which, const char* data, size_t n, bool flush) {
  std::string& p = c.partial[which];
  p.append(data, n);
  std::ostream& os = which == 0 ? std::cout : std::cerr;
  size_t start = 0, nl;
  while ((nl = p.find('\n', start)) != std::string::npos) {
    os << "[rank " << c.rank << "] " << p.substr(start, nl - start + 1);
    start = nl + 1;
  }
  p.erase(0, start);
  if (flush && !p.empty()) {
    os << "[rank " << c.rank << "] " << p << "\n";
    p.clear();
  }
  os.flush();
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

}  // namespace

void register_launch(CLI::App& app) {
  struct Flags {
    int nproc = 1;
    int port = 0;
    double grace_s = 10;
    std::vector<std::string> args;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("launch", "run `train` or `repair` as N local data-parallel processes (like torchrun)");
  cmd->add_option("--nproc", f->nproc, "number of processes (ranks) on this machine")->required()->check(CLI::Range(1, 256));
  cmd->add_option("--master-port", f->port, "rendezvous port on 127.0.0.1 (0 = pick a free one)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--grace", f->grace_s, "seconds the other ranks get after SIGTERM before SIGKILL")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("command", f->args, "after --: the subcommand and its flags, e.g. -- repair --dense D ...")->required();
  cmd->footer("Example: ressa launch --nproc 2 -- repair --dense D --pruned P --data X --out R --threads 1");
  cmd->callback([f] {
    const std::string sub = f->args.front();
    RESSA_CHECK_ARG(sub == "train" || sub == "repair", "[launch] runs `train` or `repair`, got '", sub,
                    "' (put the subcommand after --)");
    const int port = f->port > 0 ? f->port : free_port();
    const int n = f->nproc;
    std::vector<Child> kids(n);
    std::vector<std::string> argv_s{"ressa"};
    argv_s.insert(argv_s.end(), f->args.begin(), f->args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    for (int r = 0; r < n; ++r) {
      int out[2], err[2];
      RESSA_CHECK(pipe(out) == 0 && pipe(err) == 0, "[launch] pipe: ", std::strerror(errno));
      const pid_t pid = fork();
      RESSA_CHECK(pid >= 0, "[launch] fork: ", std::strerror(errno));
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the launcher
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(out[0]), close(out[1]), close(err[0]), close(err[1]);
        for (int k = 0; k < r; ++k) close(kids[k].fd[0]), close(kids[k].fd[1]);
        setenv("WORLD_SIZE", std::to_string(n).c_str(), 1);
        setenv("RANK", std::to_string(r).c_str(), 1);
        setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
        setenv("LOCAL_WORLD_SIZE", std::to_string(n).c_str(), 1);
        setenv("MASTER_ADDR", "127.0.0.1", 1);
        setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
        execv("/proc/self/exe", argv.data());
        std::fprintf(stderr, "error: [launch] cannot execute /proc/self/exe: %s\n", std::strerror(errno));
        _exit(127);
      }
      close(out[1]), close(err[1]);
      kids[r].rank = r;
      kids[r].pid = pid;
      kids[r].fd[0] = out[0];
      kids[r].fd[1] = err[0];
      std::cerr << "launch: rank " << r << " pid " << pid << " (MASTER_ADDR=127.0.0.1 MASTER_PORT=" << port << ")\n";
    }

    int first_failed = -1, first_status = 0, running = n;
    bool terminating = false;
    auto kill_deadline = std::chrono::steady_clock::time_point::max();
    auto stop_all = [&] {
      if (terminating) return;
      terminating = true;
      for (auto& c : kids)
        if (!c.exited) kill(c.pid, SIGTERM);
      kill_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(f->grace_s * 1000));
    };
    char buf[65536];
    while (true) {
      std::vector<pollfd> fds;
      std::vector<std::pair<int, int>> who;
      for (auto& c : kids)
        for (int w = 0; w < 2; ++w)
          if (c.fd[w] >= 0) {
            fds.push_back({c.fd[w], POLLIN, 0});
            who.emplace_back(c.rank, w);
          }
      if (fds.empty() && running == 0) break;
      if (!fds.empty()) poll(fds.data(), fds.size(), 200);
      else usleep(50 * 1000);
      for (size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto& c = kids[who[i].first];
        const int w = who[i].second;
        const ssize_t got = read(fds[i].fd, buf, sizeof buf);
        if (got > 0) {
          emit(c, w, buf, static_cast<size_t>(got), false);
        } else if (got == 0 || errno != EINTR) {
          emit(c, w, "", 0, true);
          close(c.fd[w]);
          c.fd[w] = -1;
        }
      }
      int st = 0;
      pid_t pid;
      while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (auto& c : kids)
          if (c.pid == pid && !c.exited) {
            c.exited = true;
            c.status = st;
            --running;
            const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            if (!ok && first_failed < 0 && !terminating) {
              first_failed = c.rank;
              first_status = st;
              stop_all();
            }
          }
      }
      if (g_signal && !terminating) {
        std::cerr << "launch: " << strsignal(g_signal) << ", stopping the ranks\n";
        stop_all();
      }
      if (terminating && std::chrono::steady_clock::now() > kill_deadline)
        for (auto& c : kids)
          if (!c.exited) kill(c.pid, SIGKILL);
    }
    if (first_failed >= 0)
      fail("[launch] rank ", first_failed, " of ", n, " ", describe(first_status), "; the other ranks were stopped");
    RESSA_CHECK(!g_signal, "[launch] interrupted by ", strsignal(g_signal), "; the ranks were stopped");
  });
}

}  // namespace ressa::cli
