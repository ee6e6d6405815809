#include "credbroker/rotation/key_refresher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/time/clock.h"

namespace credbroker::rotation {
namespace {
// The kubelet's atomic update is several file operations; let it finish before re-reading.
constexpr absl::Duration kDebounce = absl::Milliseconds(50);
// How long one wait lasts at most (a change notification wakes it sooner).
constexpr absl::Duration kMaxSleep = absl::Seconds(5);
}  // namespace

KeyRefresher::KeyRefresher(KeyRing* ring, secrets::SecretSource* source,
                           std::vector<std::string> providers, absl::Duration interval)
    : ring_(ring), source_(source), providers_(std::move(providers)), interval_(interval) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

KeyRefresher::~KeyRefresher() {
  Stop();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

absl::Status KeyRefresher::RefreshAll() {
  absl::Status first;
  for (const std::string& p : providers_) {
    absl::Status s = ring_->RefreshProvider(p, *source_);
    if (first.ok() && !s.ok()) first = s;
  }
  ring_->RefreshGauges();
  return first;
}

void KeyRefresher::Start() {
  (void)RefreshAll();  // errors are logged and counted by the ring
  thread_ = std::thread([this] { Run(); });
}

void KeyRefresher::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof(one));
  thread_.join();
}

void KeyRefresher::Run() {
  absl::Time next_refresh = absl::Now() + interval_;
  while (true) {
    absl::Duration wait =
        std::min(kMaxSleep, std::max(absl::ZeroDuration(), next_refresh - absl::Now()));
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {source_->change_fd(), POLLIN, 0}};
    int nfds = source_->change_fd() >= 0 ? 2 : 1;
    int r = ::poll(fds, nfds, static_cast<int>(absl::ToInt64Milliseconds(wait)) + 1);
    if (r > 0 && (fds[0].revents & POLLIN)) return;
    bool changed = nfds == 2 && r > 0 && (fds[1].revents & POLLIN);
    if (changed) {
      absl::SleepFor(kDebounce);
      source_->DrainChanges();
    }
    if (changed || absl::Now() >= next_refresh) {
      (void)RefreshAll();
      next_refresh = absl::Now() + interval_;
    }
  }
}

}  // namespace credbroker::rotation
