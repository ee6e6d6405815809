#include "credbroker/identity/auth_failure_folder.h"

#include "absl/container/flat_hash_map.h"

namespace credbroker::identity {

std::optional<uint64_t> AuthFailureFolder::Admit(absl::string_view peer) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(peer);
  if (it != peers_.end() && now < it->second.ends) {
    ++it->second.folded;
    if (stats_ != nullptr) stats_->AuditLinesFolded(1);
    return std::nullopt;
  }
  uint64_t folded = 0;
  if (it != peers_.end()) {
    folded = it->second.folded;
    it->second = Window{now + options_.window, 0};
    return folded;
  }
  if (peers_.size() >= options_.max_peers) {
    // Make room from windows that ended; with none, audit this one unfolded.
    absl::erase_if(peers_, [now](const auto& p) { return now >= p.second.ends; });
    if (peers_.size() >= options_.max_peers) return 0;
  }
  peers_.emplace(peer, Window{now + options_.window, 0});
  return 0;
}

std::string AuthFailureFolder::PeerAddress(absl::string_view grpc_peer) {
  // "ipv4:1.2.3.4:5678", "ipv6:[::1]:5678": the port follows the last colon. Others ("unix:...")
  // have none.
  if (grpc_peer.substr(0, 5) != "ipv4:" && grpc_peer.substr(0, 5) != "ipv6:") {
    return std::string(grpc_peer);
  }
  const size_t colon = grpc_peer.rfind(':');
  return std::string(colon > 4 ? grpc_peer.substr(0, colon) : grpc_peer);
}

}  // namespace credbroker::identity
