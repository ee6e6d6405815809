// BatchScope marks a stretch of work on one thread that finishes many requests at once (the
// group-commit thread running the completions of one committed batch). A sink that can coalesce
// its output (the audit log's write(2), one per line otherwise) asks to be flushed when the scope
// ends instead of flushing for each request: N completions then cost one write, not N.
//
// Scopes do not nest: an inner scope on the same thread adds nothing (its flushes run when the
// outer one ends). Flushes run in the order they were first registered, once each per scope.
// Thread-safety: a scope belongs to the thread that opened it; AtEnd only touches this thread's.
#pragma once

#include <functional>
#include <utility>
#include <vector>

namespace credbroker::core {

class BatchScope {
 public:
  BatchScope();
  ~BatchScope();
  BatchScope(const BatchScope&) = delete;
  BatchScope& operator=(const BatchScope&) = delete;

  // Registers `flush` under `key` (once per key) to run when this thread's open scope ends.
  // Returns false, registering nothing, when no scope is open on this thread: flush now.
  static bool AtEnd(const void* key, const std::function<void()>& flush);

 private:
  bool outermost_;
  std::vector<std::pair<const void*, std::function<void()>>> flushes_;
};

}  // namespace credbroker::core
