// SqliteSharedFacts: state::SharedFacts in the broker's SQLite state file. Reports and
// suspensions are rows written through the Database's group commit (a report from the request
// path never blocks its thread on the commit); reports older than the retention are deleted as
// new ones arrive. One broker owns the file, so the watch is in-process.
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "credbroker/state/shared_facts.h"
#include "credbroker/state/sqlite/database.h"

namespace credbroker::state::sqlite {

template <typename Change>
class RevisionCounter;

class SqliteSharedFacts final : public SharedFacts {
 public:
  static const char* Schema();
  // `db` (opened with Schema() and the lease store's schema) must outlive the store.
  static absl::StatusOr<std::unique_ptr<SqliteSharedFacts>> Open(Database* db,
                                                                 absl::Duration report_retention);
  ~SqliteSharedFacts() override;

  void AddAuthFailure(const AuthFailureReport& report,
                      std::function<void(absl::Status)> done) override;
  absl::Status Suspend(const Suspension& suspension) override;
  absl::StatusOr<FactListing> List(absl::Time now) override;
  absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision,
                                                      FactWatchFn fn) override;

 private:
  SqliteSharedFacts(Database* db, absl::Duration retention, int64_t revision);

  Database* const db_;
  const absl::Duration retention_;
  std::unique_ptr<RevisionCounter<Fact>> counter_;
};

}  // namespace credbroker::state::sqlite
