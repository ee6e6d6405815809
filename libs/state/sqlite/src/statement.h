// Small helpers for one-off SQLite statements inside Database::Write/Read callbacks.
#pragma once

#include <sqlite3.h>

#include <string>

#include "absl/strings/string_view.h"

namespace credbroker::state::sqlite {

// A statement prepared for one use, finalized when the scope ends.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) s_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(s_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return s_ != nullptr; }
  sqlite3_stmt* get() const { return s_; }
  void Bind(int col, absl::string_view v) const {
    sqlite3_bind_text(s_, col, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  std::string Text(int col) const {
    const unsigned char* t = sqlite3_column_text(s_, col);
    return t ? std::string(reinterpret_cast<const char*>(t),
                           static_cast<size_t>(sqlite3_column_bytes(s_, col)))
             : std::string();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

}  // namespace credbroker::state::sqlite
