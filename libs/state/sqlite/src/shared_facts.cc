#include "credbroker/state/sqlite/shared_facts.h"

#include <algorithm>

#include "credbroker/core/status_macros.h"
#include "revision_counter.h"
#include "statement.h"

namespace credbroker::state::sqlite {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS auth_failure_reports (
  revision INTEGER PRIMARY KEY,
  provider TEXT NOT NULL,
  key_version TEXT NOT NULL,
  caller TEXT NOT NULL,
  http_status INTEGER NOT NULL,
  at_us INTEGER NOT NULL,
  kind TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS auth_failure_reports_at ON auth_failure_reports(at_us);
CREATE TABLE IF NOT EXISTS suspensions (
  caller TEXT NOT NULL,
  provider TEXT NOT NULL,
  until_us INTEGER NOT NULL,
  reason TEXT NOT NULL,
  revision INTEGER NOT NULL,
  PRIMARY KEY (caller, provider)
);
)sql";

}  // namespace

const char* SqliteSharedFacts::Schema() { return kSchema; }

SqliteSharedFacts::SqliteSharedFacts(Database* db, absl::Duration retention, int64_t revision)
    : db_(db),
      retention_(retention),
      counter_(std::make_unique<RevisionCounter<Fact>>(db, "facts_revision", revision)) {}

SqliteSharedFacts::~SqliteSharedFacts() = default;

absl::StatusOr<std::unique_ptr<SqliteSharedFacts>> SqliteSharedFacts::Open(
    Database* db, absl::Duration report_retention) {
  // State files written before reports carried their classification: add the column (the old
  // rows keep '' and are judged by their status, as they were).
  bool has_kind = false;
  CB_RETURN_IF_ERROR(db->Read([&](sqlite3* h) -> absl::Status {
    Statement s(h, "SELECT 1 FROM pragma_table_info('auth_failure_reports') WHERE name='kind'");
    if (!s.ok()) return db->Error(h, "read the auth-failure report columns");
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      return db->Error(h, "read the auth-failure report columns");
    }
    has_kind = rc == SQLITE_ROW;
    return absl::OkStatus();
  }));
  if (!has_kind) {
    CB_RETURN_IF_ERROR(db->Write([&](Database::Txn& txn) -> absl::Status {
      Statement s(txn.db(),
                  "ALTER TABLE auth_failure_reports ADD COLUMN kind TEXT NOT NULL DEFAULT ''");
      if (!s.ok() || sqlite3_step(s.get()) != SQLITE_DONE) {
        return db->Error(txn.db(), "add the auth-failure report kind");
      }
      return absl::OkStatus();
    }));
  }
  int64_t revision = 0;
  CB_RETURN_IF_ERROR(db->Read([&](sqlite3* h) -> absl::Status {
    Statement s(h,
                "SELECT max(coalesce((SELECT value FROM store_meta WHERE key='facts_revision'), "
                "0), coalesce((SELECT max(revision) FROM auth_failure_reports), 0), "
                "coalesce((SELECT max(revision) FROM suspensions), 0))");
    if (!s.ok() || sqlite3_step(s.get()) != SQLITE_ROW) {
      return db->Error(h, "read the facts revision");
    }
    revision = sqlite3_column_int64(s.get(), 0);
    return absl::OkStatus();
  }));
  return std::unique_ptr<SqliteSharedFacts>(new SqliteSharedFacts(db, report_retention, revision));
}

void SqliteSharedFacts::AddAuthFailure(const AuthFailureReport& report,
                                       std::function<void(absl::Status)> done) {
  db_->WriteAsync(
      [this, report](Database::Txn& txn) -> absl::Status {
        sqlite3* h = txn.db();
        {
          Statement prune(h, "DELETE FROM auth_failure_reports WHERE at_us < ?");
          if (!prune.ok()) return db_->Error(h, "prune auth-failure reports");
          sqlite3_bind_int64(prune.get(), 1, absl::ToUnixMicros(report.at - retention_));
          if (sqlite3_step(prune.get()) != SQLITE_DONE) {
            return db_->Error(h, "prune auth-failure reports");
          }
        }
        Fact f;
        f.kind = Fact::Kind::kAuthFailure;
        f.revision = counter_->Next(txn);
        f.report = report;
        Statement s(h, "INSERT INTO auth_failure_reports VALUES (?,?,?,?,?,?,?)");
        if (!s.ok()) return db_->Error(h, "save auth-failure report");
        sqlite3_bind_int64(s.get(), 1, f.revision);
        s.Bind(2, report.provider);
        s.Bind(3, report.key_version);
        s.Bind(4, report.caller);
        sqlite3_bind_int(s.get(), 5, report.http_status);
        sqlite3_bind_int64(s.get(), 6, absl::ToUnixMicros(report.at));
        s.Bind(7, report.kind);
        if (sqlite3_step(s.get()) != SQLITE_DONE) return db_->Error(h, "save auth-failure report");
        counter_->Add(std::move(f));
        return absl::OkStatus();
      },
      std::move(done));
}

absl::Status SqliteSharedFacts::Suspend(const Suspension& suspension) {
  return db_->Write([&](Database::Txn& txn) -> absl::Status {
    sqlite3* h = txn.db();
    Fact f;
    f.kind = Fact::Kind::kSuspension;
    f.revision = counter_->Next(txn);
    f.suspension = suspension;
    Statement s(h, "INSERT OR REPLACE INTO suspensions VALUES (?,?,?,?,?)");
    if (!s.ok()) return db_->Error(h, "save suspension");
    s.Bind(1, suspension.caller);
    s.Bind(2, suspension.provider);
    sqlite3_bind_int64(s.get(), 3, absl::ToUnixMicros(suspension.until));
    s.Bind(4, suspension.reason);
    sqlite3_bind_int64(s.get(), 5, f.revision);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db_->Error(h, "save suspension");
    counter_->Add(std::move(f));
    return absl::OkStatus();
  });
}

absl::StatusOr<FactListing> SqliteSharedFacts::List(absl::Time now) {
  FactListing out;
  CB_RETURN_IF_ERROR(db_->Read([&](sqlite3* h) -> absl::Status {
    {
      Statement s(h,
                  "SELECT revision, provider, key_version, caller, http_status, at_us, kind "
                  "FROM auth_failure_reports WHERE at_us >= ?");
      if (!s.ok()) return db_->Error(h, "read auth-failure reports");
      sqlite3_bind_int64(s.get(), 1, absl::ToUnixMicros(now - retention_));
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        Fact f;
        f.kind = Fact::Kind::kAuthFailure;
        f.revision = sqlite3_column_int64(s.get(), 0);
        f.report = {s.Text(1),
                    s.Text(2),
                    s.Text(3),
                    sqlite3_column_int(s.get(), 4),
                    absl::FromUnixMicros(sqlite3_column_int64(s.get(), 5)),
                    s.Text(6)};
        out.facts.push_back(std::move(f));
      }
      if (rc != SQLITE_DONE) return db_->Error(h, "read auth-failure reports");
    }
    {
      Statement s(h,
                  "SELECT revision, caller, provider, until_us, reason FROM suspensions WHERE "
                  "until_us > ?");
      if (!s.ok()) return db_->Error(h, "read suspensions");
      sqlite3_bind_int64(s.get(), 1, absl::ToUnixMicros(now));
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        Fact f;
        f.kind = Fact::Kind::kSuspension;
        f.revision = sqlite3_column_int64(s.get(), 0);
        f.suspension = {s.Text(1), s.Text(2),
                        absl::FromUnixMicros(sqlite3_column_int64(s.get(), 3)), s.Text(4)};
        out.facts.push_back(std::move(f));
      }
      if (rc != SQLITE_DONE) return db_->Error(h, "read suspensions");
    }
    out.revision = counter_->revision();
    return absl::OkStatus();
  }));
  std::sort(out.facts.begin(), out.facts.end(),
            [](const Fact& a, const Fact& b) { return a.revision < b.revision; });
  return out;
}

absl::StatusOr<std::unique_ptr<Watch>> SqliteSharedFacts::Watch(int64_t after_revision,
                                                                FactWatchFn fn) {
  absl::StatusOr<std::unique_ptr<state::Watch>> out;
  // Under the connection lock, so no write is published between the replay and the registration.
  CB_RETURN_IF_ERROR(db_->Read([&](sqlite3*) -> absl::Status {
    out = counter_->log().Watch(after_revision, std::move(fn));
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace credbroker::state::sqlite
