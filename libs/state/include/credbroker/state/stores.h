// Stores is one implementation of the whole replicated-state set (ARCHITECTURE.md, "Replicated
// state"): the lease store, the key-state store, the shared facts, the anomaly baselines and the
// leadership that decides who runs leader-only work. The broker is wired against this interface;
// the `state:` configuration block chooses the implementation (state::OpenStores).
// Thread-safety: the stores are safe for concurrent use; Stores itself is immutable.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "credbroker/state/leadership.h"
#include "credbroker/state/lease_store.h"
#include "credbroker/state/shared_facts.h"

namespace credbroker::rotation {
class KeyStateStore;
}
namespace credbroker::anomaly {
class AnomalyBaselineStore;
}

namespace credbroker::state {

class Stores {
 public:
  // Field name and value, for log lines.
  using Fields = std::vector<std::pair<std::string, std::string>>;

  virtual ~Stores() = default;
  virtual LeaseStore& leases() = 0;
  virtual rotation::KeyStateStore& key_states() = 0;
  virtual SharedFacts& facts() = 0;
  virtual anomaly::AnomalyBaselineStore& anomaly_baselines() = 0;
  virtual Leadership& leadership() = 0;
  // What the stores are, for the startup log (e.g. {"store", "sqlite"}, {"path", ...}).
  virtual Fields Describe() const = 0;
  // Figures worth a line at shutdown (e.g. writes and commits of group commit); may be empty.
  virtual Fields Summary() const = 0;
};

}  // namespace credbroker::state
