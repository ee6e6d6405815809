#include "credbroker/core/batch_scope.h"

namespace credbroker::core {
namespace {
thread_local BatchScope* open_scope = nullptr;
}  // namespace

BatchScope::BatchScope() : outermost_(open_scope == nullptr) {
  if (outermost_) open_scope = this;
}

BatchScope::~BatchScope() {
  if (!outermost_) return;
  // A flush may record more (and so register again): run until nothing is left, then close.
  while (!flushes_.empty()) {
    std::vector<std::pair<const void*, std::function<void()>>> run;
    run.swap(flushes_);
    for (auto& [key, flush] : run) flush();
  }
  open_scope = nullptr;
}

bool BatchScope::AtEnd(const void* key, const std::function<void()>& flush) {
  BatchScope* scope = open_scope;
  if (scope == nullptr) return false;
  for (const auto& [k, f] : scope->flushes_) {
    if (k == key) return true;
  }
  scope->flushes_.emplace_back(key, flush);
  return true;
}

}  // namespace credbroker::core
