#include "credbroker/metrics/anomaly_baseline_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/sqlite/open.h"

namespace credbroker::metrics {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS baselines (
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

struct AnomalyBaselineStore::Impl {
  absl::Mutex mu;
  sqlite3* db = nullptr;
  ~Impl() {
    if (db) sqlite3_close(db);
  }
  absl::Status Error(absl::string_view what) const {
    return absl::UnavailableError(
        absl::StrCat("anomaly baseline store: ", what, ": ", sqlite3_errmsg(db)));
  }
};

AnomalyBaselineStore::AnomalyBaselineStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AnomalyBaselineStore::~AnomalyBaselineStore() = default;

absl::StatusOr<std::unique_ptr<AnomalyBaselineStore>> AnomalyBaselineStore::Open(
    const std::string& path) {
  auto impl = std::make_unique<Impl>();
  CB_ASSIGN_OR_RETURN(impl->db,
                      state::sqlite::OpenDatabase(path, kSchema, /*synchronous_full=*/false,
                                                  "anomaly baseline store"));
  return std::unique_ptr<AnomalyBaselineStore>(new AnomalyBaselineStore(std::move(impl)));
}

absl::StatusOr<absl::Time> AnomalyBaselineStore::LearningUntil(absl::Time if_new) {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(impl_->db, "INSERT OR IGNORE INTO meta VALUES ('learning_until_us', ?)",
                         -1, &s, nullptr) != SQLITE_OK) {
    return impl_->Error("prepare");
  }
  sqlite3_bind_int64(s, 1, absl::ToUnixMicros(if_new));
  int rc = sqlite3_step(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return impl_->Error("insert");
  if (sqlite3_prepare_v2(impl_->db, "SELECT value FROM meta WHERE key = 'learning_until_us'", -1,
                         &s, nullptr) != SQLITE_OK) {
    return impl_->Error("prepare");
  }
  rc = sqlite3_step(s);
  absl::Time out = if_new;
  if (rc == SQLITE_ROW) out = absl::FromUnixMicros(sqlite3_column_int64(s, 0));
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW) return impl_->Error("read");
  return out;
}

absl::StatusOr<std::vector<AnomalyBaseline>> AnomalyBaselineStore::Load() {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(impl_->db,
                         "SELECT caller, provider, rate_mean, rate_var, fail_mean, fail_var, "
                         "buckets, suspended_until_us FROM baselines",
                         -1, &s, nullptr) != SQLITE_OK) {
    return impl_->Error("prepare");
  }
  auto text = [s](int col) {
    const unsigned char* t = sqlite3_column_text(s, col);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  };
  std::vector<AnomalyBaseline> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    AnomalyBaseline b;
    b.caller = text(0);
    b.provider = text(1);
    b.rate_mean = sqlite3_column_double(s, 2);
    b.rate_var = sqlite3_column_double(s, 3);
    b.fail_mean = sqlite3_column_double(s, 4);
    b.fail_var = sqlite3_column_double(s, 5);
    b.buckets = sqlite3_column_int(s, 6);
    if (sqlite3_column_type(s, 7) != SQLITE_NULL) {
      b.suspended_until = absl::FromUnixMicros(sqlite3_column_int64(s, 7));
    }
    out.push_back(std::move(b));
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) {
    return absl::DataLossError(absl::StrCat("anomaly baseline store: ", sqlite3_errmsg(impl_->db)));
  }
  return out;
}

absl::Status AnomalyBaselineStore::Save(const std::vector<AnomalyBaseline>& baselines) {
  absl::MutexLock lock(&impl_->mu);
  if (sqlite3_exec(impl_->db, "BEGIN; DELETE FROM baselines;", nullptr, nullptr, nullptr) !=
      SQLITE_OK) {
    sqlite3_exec(impl_->db, "ROLLBACK", nullptr, nullptr, nullptr);
    return impl_->Error("begin");
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(impl_->db, "INSERT INTO baselines VALUES (?,?,?,?,?,?,?,?)", -1, &s,
                         nullptr) != SQLITE_OK) {
    sqlite3_exec(impl_->db, "ROLLBACK", nullptr, nullptr, nullptr);
    return impl_->Error("prepare");
  }
  for (const AnomalyBaseline& b : baselines) {
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, b.caller.data(), static_cast<int>(b.caller.size()), SQLITE_STATIC);
    sqlite3_bind_text(s, 2, b.provider.data(), static_cast<int>(b.provider.size()), SQLITE_STATIC);
    sqlite3_bind_double(s, 3, b.rate_mean);
    sqlite3_bind_double(s, 4, b.rate_var);
    sqlite3_bind_double(s, 5, b.fail_mean);
    sqlite3_bind_double(s, 6, b.fail_var);
    sqlite3_bind_int(s, 7, b.buckets);
    if (b.suspended_until == absl::InfinitePast()) {
      sqlite3_bind_null(s, 8);
    } else {
      sqlite3_bind_int64(s, 8, absl::ToUnixMicros(b.suspended_until));
    }
    if (sqlite3_step(s) != SQLITE_DONE) {
      sqlite3_finalize(s);
      sqlite3_exec(impl_->db, "ROLLBACK", nullptr, nullptr, nullptr);
      return impl_->Error("insert");
    }
  }
  sqlite3_finalize(s);
  if (sqlite3_exec(impl_->db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    sqlite3_exec(impl_->db, "ROLLBACK", nullptr, nullptr, nullptr);
    return impl_->Error("commit");
  }
  return absl::OkStatus();
}

}  // namespace credbroker::metrics
