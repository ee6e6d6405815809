// KeyRefresher keeps a KeyRing up to date from one SecretSource: it refreshes every provider
// that uses the source at start, whenever the source signals a change (inotify for files), and
// every `interval` otherwise. It runs on every replica (each needs the key material); retirement
// is the RotationScheduler's (leader) work.
// Thread-safety: Start/Stop from one thread; the work runs on an owned background thread.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/secrets/secret_source.h"

namespace credbroker::rotation {

class KeyRefresher {
 public:
  KeyRefresher(KeyRing* ring, secrets::SecretSource* source, std::vector<std::string> providers,
               absl::Duration interval);
  ~KeyRefresher();
  KeyRefresher(const KeyRefresher&) = delete;
  KeyRefresher& operator=(const KeyRefresher&) = delete;

  // Refreshes every provider once, synchronously (used at start so the broker serves keys from
  // its first request), then starts the background thread.
  void Start();
  void Stop();
  // One pass over every provider; returns the first error.
  absl::Status RefreshAll();

 private:
  void Run();

  KeyRing* const ring_;
  secrets::SecretSource* const source_;
  const std::vector<std::string> providers_;
  const absl::Duration interval_;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace credbroker::rotation
