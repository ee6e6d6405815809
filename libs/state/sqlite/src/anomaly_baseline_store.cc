#include "credbroker/state/sqlite/anomaly_baseline_store.h"

#include "credbroker/core/status_macros.h"
#include "statement.h"

namespace credbroker::state::sqlite {
namespace {

using anomaly::AnomalyBaseline;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS anomaly_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS anomaly_baselines (
  caller TEXT NOT NULL,
  provider TEXT NOT NULL,
  rate_mean REAL NOT NULL,
  rate_var REAL NOT NULL,
  fail_mean REAL NOT NULL,
  fail_var REAL NOT NULL,
  buckets INTEGER NOT NULL,
  suspended_until_us INTEGER,
  PRIMARY KEY (caller, provider)
);
)sql";

}  // namespace

const char* SqliteAnomalyBaselineStore::Schema() { return kSchema; }

absl::StatusOr<absl::Time> SqliteAnomalyBaselineStore::LearningUntil(absl::Time if_new) {
  absl::Time out = if_new;
  CB_RETURN_IF_ERROR(db_->Write([&](Database::Txn& txn) -> absl::Status {
    Statement insert(txn.db(),
                     "INSERT OR IGNORE INTO anomaly_meta VALUES ('learning_until_us', ?)");
    if (!insert.ok()) return db_->Error(txn.db(), "store the learning period");
    sqlite3_bind_int64(insert.get(), 1, absl::ToUnixMicros(if_new));
    if (sqlite3_step(insert.get()) != SQLITE_DONE) {
      return db_->Error(txn.db(), "store the learning period");
    }
    Statement read(txn.db(), "SELECT value FROM anomaly_meta WHERE key = 'learning_until_us'");
    if (!read.ok() || sqlite3_step(read.get()) != SQLITE_ROW) {
      return db_->Error(txn.db(), "read the learning period");
    }
    out = absl::FromUnixMicros(sqlite3_column_int64(read.get(), 0));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<AnomalyBaseline>> SqliteAnomalyBaselineStore::Load() {
  std::vector<AnomalyBaseline> out;
  CB_RETURN_IF_ERROR(db_->Read([&](sqlite3* h) -> absl::Status {
    Statement s(h,
                "SELECT caller, provider, rate_mean, rate_var, fail_mean, fail_var, buckets, "
                "suspended_until_us FROM anomaly_baselines");
    if (!s.ok()) return db_->Error(h, "read anomaly baselines");
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      AnomalyBaseline b;
      b.caller = s.Text(0);
      b.provider = s.Text(1);
      b.rate_mean = sqlite3_column_double(s.get(), 2);
      b.rate_var = sqlite3_column_double(s.get(), 3);
      b.fail_mean = sqlite3_column_double(s.get(), 4);
      b.fail_var = sqlite3_column_double(s.get(), 5);
      b.buckets = sqlite3_column_int(s.get(), 6);
      if (sqlite3_column_type(s.get(), 7) != SQLITE_NULL) {
        b.suspended_until = absl::FromUnixMicros(sqlite3_column_int64(s.get(), 7));
      }
      out.push_back(std::move(b));
    }
    if (rc != SQLITE_DONE) return db_->Error(h, "read anomaly baselines");
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteAnomalyBaselineStore::Save(const std::vector<AnomalyBaseline>& baselines) {
  return db_->Write([&](Database::Txn& txn) -> absl::Status {
    if (sqlite3_exec(txn.db(), "DELETE FROM anomaly_baselines", nullptr, nullptr, nullptr) !=
        SQLITE_OK) {
      return db_->Error(txn.db(), "replace anomaly baselines");
    }
    Statement s(txn.db(), "INSERT INTO anomaly_baselines VALUES (?,?,?,?,?,?,?,?)");
    if (!s.ok()) return db_->Error(txn.db(), "replace anomaly baselines");
    for (const AnomalyBaseline& b : baselines) {
      sqlite3_reset(s.get());
      s.Bind(1, b.caller);
      s.Bind(2, b.provider);
      sqlite3_bind_double(s.get(), 3, b.rate_mean);
      sqlite3_bind_double(s.get(), 4, b.rate_var);
      sqlite3_bind_double(s.get(), 5, b.fail_mean);
      sqlite3_bind_double(s.get(), 6, b.fail_var);
      sqlite3_bind_int(s.get(), 7, b.buckets);
      if (b.suspended_until == absl::InfinitePast()) {
        sqlite3_bind_null(s.get(), 8);
      } else {
        sqlite3_bind_int64(s.get(), 8, absl::ToUnixMicros(b.suspended_until));
      }
      if (sqlite3_step(s.get()) != SQLITE_DONE) {
        return db_->Error(txn.db(), "replace anomaly baselines");
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace credbroker::state::sqlite
