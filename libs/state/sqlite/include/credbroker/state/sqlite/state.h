// SqliteState: the state stores of a single broker (state.sqlite), in one SQLite file that this
// process owns: leases, key-version states and minted key ids, anomaly baselines and suspensions.
// Built from the `state.sqlite` configuration block.
// Errors: FAILED_PRECONDITION naming the file when it cannot be opened (also when another
// process holds it).
// Thread-safety: the stores are safe for concurrent use.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "credbroker/state/leadership.h"
#include "credbroker/state/lease_store.h"
#include "credbroker/state/sqlite/anomaly_baseline_store.h"
#include "credbroker/state/sqlite/database.h"
#include "credbroker/state/sqlite/key_state_store.h"
#include "credbroker/state/sqlite/lease_store.h"
#include "credbroker/state/sqlite/shared_facts.h"
#include "credbroker/state/stores.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::state::sqlite {

class SqliteState final : public Stores {
 public:
  // Opens the state file. A new file takes over the files of an earlier version that kept each
  // store in a file of its own (leases.db, keys.db, anomaly.db in the same folder): their rows
  // are copied in and each is renamed `<name>.imported`, so an upgrade loses no lease, no retire
  // time and no baseline.
  // `report_retention`: how long auth-failure reports are kept (longer than the revocation
  // detection window).
  static absl::StatusOr<std::unique_ptr<SqliteState>> Open(
      const v1::SqliteStoreConfig& config, absl::Duration report_retention = absl::Hours(1));

  LeaseStore& leases() override { return *leases_; }
  // Always the leader: one broker owns the file. Its epoch is raised at every open.
  Leadership& leadership() override { return leadership_; }
  rotation::KeyStateStore& key_states() override { return *key_states_; }
  anomaly::AnomalyBaselineStore& anomaly_baselines() override { return anomaly_; }
  SharedFacts& facts() override { return *facts_; }
  Database& database() { return *db_; }
  // {"store", "sqlite"}, {"path", the file}.
  Fields Describe() const override;
  // Writes and the commits that held them (group commit).
  Fields Summary() const override;

 private:
  SqliteState(std::unique_ptr<Database> db, std::unique_ptr<SqliteLeaseStore> leases, int64_t epoch)
      : db_(std::move(db)), leases_(std::move(leases)), leadership_(epoch), anomaly_(db_.get()) {}
  std::unique_ptr<Database> db_;
  std::unique_ptr<SqliteLeaseStore> leases_;
  SingleNodeLeadership leadership_;
  std::unique_ptr<SqliteKeyStateStore> key_states_;
  std::unique_ptr<SqliteSharedFacts> facts_;
  SqliteAnomalyBaselineStore anomaly_;
};

}  // namespace credbroker::state::sqlite
