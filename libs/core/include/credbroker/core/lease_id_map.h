// Maps keyed by lease id without a string per entry: an id NewLeaseId made (22 base64url
// characters) is kept as its 16 bytes (LeaseKey); any other id, which the broker never makes but
// a store might hold, is kept whole on the side rather than dropped. The lease cache and the
// SQLite store's row index hold one entry per active lease: at a million leases the id string
// alone (a heap allocation past the small-string buffer) would cost more than the rest of the
// entry.
// Thread-safety: none (values; guard them as the owner's other state).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace credbroker::core {

// A lease id as the bytes NewLeaseId encoded (22 base64url characters ⇔ 16 bytes).
class LeaseKey {
 public:
  // The key of `id`; nullopt for an id NewLeaseId could not have produced.
  static std::optional<LeaseKey> Of(absl::string_view id);
  // The id again (22 characters).
  std::string Id() const;

  template <typename H>
  friend H AbslHashValue(H h, const LeaseKey& k) {
    return H::combine(std::move(h), absl::string_view(k.bytes_.data(), k.bytes_.size()));
  }
  bool operator==(const LeaseKey&) const = default;

 private:
  std::array<char, 16> bytes_{};
};

template <typename V>
class LeaseIdMap {
 public:
  // The value of `id`, or null.
  V* Find(absl::string_view id) {
    if (std::optional<LeaseKey> key = LeaseKey::Of(id)) {
      auto it = by_key_.find(*key);
      return it == by_key_.end() ? nullptr : &it->second;
    }
    auto it = other_.find(id);
    return it == other_.end() ? nullptr : &it->second;
  }
  const V* Find(absl::string_view id) const { return const_cast<LeaseIdMap*>(this)->Find(id); }
  bool Contains(absl::string_view id) const { return Find(id) != nullptr; }

  // Sets `id`'s value; true when `id` was absent.
  bool Put(absl::string_view id, V value) {
    if (std::optional<LeaseKey> key = LeaseKey::Of(id)) {
      return by_key_.insert_or_assign(*key, std::move(value)).second;
    }
    return other_.insert_or_assign(std::string(id), std::move(value)).second;
  }
  // The value of `id`, default-constructed first when absent.
  V& FindOrAdd(absl::string_view id) {
    if (std::optional<LeaseKey> key = LeaseKey::Of(id)) return by_key_[*key];
    auto it = other_.find(id);
    if (it == other_.end()) it = other_.emplace(std::string(id), V{}).first;
    return it->second;
  }
  // Removes `id`; true when it was there.
  bool Erase(absl::string_view id) {
    if (std::optional<LeaseKey> key = LeaseKey::Of(id)) return by_key_.erase(*key) > 0;
    return other_.erase(id) > 0;
  }
  size_t size() const { return by_key_.size() + other_.size(); }

  // Calls fn(id, value) for every entry, in no order. `fn` must not add or remove entries.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [key, value] : by_key_) fn(key.Id(), value);
    for (const auto& [id, value] : other_) fn(id, value);
  }

 private:
  absl::flat_hash_map<LeaseKey, V> by_key_;
  absl::flat_hash_map<std::string, V> other_;
};

}  // namespace credbroker::core
