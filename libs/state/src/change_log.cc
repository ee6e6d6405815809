#include "credbroker/state/change_log.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace credbroker::state {

class ChangeLog::Handle final : public LeaseWatch {
 public:
  Handle(ChangeLog* log, uint64_t id) : log_(log), id_(id) {}
  ~Handle() override { log_->Unwatch(id_); }

 private:
  ChangeLog* const log_;
  const uint64_t id_;
};

ChangeLog::ChangeLog(int64_t compacted_through, size_t remember)
    : remember_(remember), compacted_through_(compacted_through) {}

ChangeLog::~ChangeLog() = default;

void ChangeLog::Publish(std::vector<LeaseChange> batch) {
  if (batch.empty()) return;
  auto shared = std::make_shared<const std::vector<LeaseChange>>(std::move(batch));
  absl::MutexLock lock(&mu_);
  history_.push_back(shared);
  remembered_ += shared->size();
  while (history_.size() > 1 && remembered_ - history_.front()->size() >= remember_) {
    remembered_ -= history_.front()->size();
    compacted_through_ = history_.front()->back().revision;
    history_.pop_front();
  }
  for (const auto& [id, fn] : watchers_) fn(*shared);
}

absl::StatusOr<std::unique_ptr<LeaseWatch>> ChangeLog::Watch(int64_t after_revision,
                                                             LeaseWatchFn fn) {
  absl::MutexLock lock(&mu_);
  if (after_revision < compacted_through_) {
    return absl::OutOfRangeError(absl::StrCat(
        "lease changes after revision ", after_revision,
        " are compacted (oldest remembered: ", compacted_through_ + 1, "); reload with List"));
  }
  for (const auto& batch : history_) {
    if (batch->back().revision <= after_revision) continue;
    if (batch->front().revision > after_revision) {
      fn(*batch);
      continue;
    }
    std::vector<LeaseChange> tail;
    for (const LeaseChange& c : *batch) {
      if (c.revision > after_revision) tail.push_back(c);
    }
    fn(tail);
  }
  const uint64_t id = next_id_++;
  watchers_.emplace(id, std::move(fn));
  return std::unique_ptr<LeaseWatch>(new Handle(this, id));
}

void ChangeLog::Unwatch(uint64_t id) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(id);
}

}  // namespace credbroker::state
