#include "credbroker/client/lease_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "credbroker/core/proto_time.h"

namespace credbroker::client {

LeaseClient::LeaseClient(std::shared_ptr<LeaseConnection> connection, LeaseClientOptions options)
    : connection_(std::move(connection)), options_(std::move(options)) {
  renewer_ = std::thread([this] { RenewLoop(); });
  if (options_.watch) watcher_ = std::thread([this] { WatchLoop(); });
}

LeaseClient::~LeaseClient() {
  std::shared_ptr<KeyEventStream> stream;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    stream = stream_;
    changed_.SignalAll();
  }
  if (stream != nullptr) stream->Cancel();
  if (watcher_.joinable()) watcher_.join();
  renewer_.join();
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    ids = std::move(to_release_);
    for (const auto& [provider, held] : held_) {
      if (!held.dropped) ids.push_back(held.lease.lease_id());
    }
    held_.clear();
  }
  for (const std::string& id : ids) ReleaseQuietly(id);
}

absl::StatusOr<LeaseClient::Header> LeaseClient::AuthorizationHeader(const std::string& provider) {
  absl::StatusOr<v1::Lease> lease = Usable(provider);
  if (!lease.ok()) return lease.status();
  if (lease->header_name().empty()) {
    return Header{"Authorization", absl::StrCat("Bearer ", lease->api_key())};
  }
  return Header{lease->header_name(), lease->header_value()};
}

absl::StatusOr<std::string> LeaseClient::BaseUrl(const std::string& provider) {
  absl::StatusOr<v1::Lease> lease = Usable(provider);
  if (!lease.ok()) return lease.status();
  return lease->base_url();
}

absl::StatusOr<v1::Lease> LeaseClient::CurrentLease(const std::string& provider) {
  return Usable(provider);
}

absl::StatusOr<v1::Lease> LeaseClient::Usable(const std::string& provider) {
  {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(provider);
    const absl::Time now = absl::Now();
    if (it != held_.end() && !it->second.dropped && now < it->second.expires_at &&
        (!it->second.stale || now < it->second.retry_after)) {
      return it->second.lease;
    }
  }
  absl::StatusOr<v1::Lease> fresh = Acquire(provider);
  if (fresh.ok()) return fresh;
  // A newer key exists but the broker cannot be reached: the held key is still valid until its
  // lease expires (a ROTATED key stays valid while PREVIOUS). Never a dropped or expired one.
  absl::MutexLock lock(&mu_);
  auto it = held_.find(provider);
  if (it != held_.end() && !it->second.dropped && absl::Now() < it->second.expires_at) {
    it->second.retry_after = absl::Now() + options_.retry_interval;
    return it->second.lease;
  }
  return fresh.status();
}

absl::StatusOr<v1::Lease> LeaseClient::Acquire(const std::string& provider) {
  v1::AcquireLeaseRequest request;
  request.set_provider(provider);
  if (options_.ttl > absl::ZeroDuration())
    core::ToProtoDuration(options_.ttl, request.mutable_ttl());
  request.set_purpose(options_.purpose);
  absl::StatusOr<v1::Lease> lease = connection_->AcquireLease(request);
  if (lease.ok()) Hold(*lease);
  return lease;
}

absl::Time LeaseClient::DueFor(const v1::Lease& lease, absl::Time received) const {
  // From when this grant (an acquire or the last renewal) arrived, not from `issued_at`: that
  // stays the first grant's time, and renewals measured from it would come ever sooner.
  const absl::Time expires = core::FromProtoTime(lease.expires_at());
  absl::Time due = received + (expires - received) * options_.renew_fraction;
  if (lease.has_key_retires_at()) {
    due = std::min(due, core::FromProtoTime(lease.key_retires_at()) - options_.retire_margin);
  }
  return due;
}

void LeaseClient::Hold(v1::Lease lease) {
  absl::MutexLock lock(&mu_);
  Held& held = held_[lease.provider()];
  if (!held.lease.lease_id().empty() && held.lease.lease_id() != lease.lease_id() &&
      !held.dropped) {
    to_release_.push_back(held.lease.lease_id());
  }
  held.expires_at = core::FromProtoTime(lease.expires_at());
  held.received = absl::Now();
  held.due = DueFor(lease, held.received);
  held.stale = false;
  held.dropped = false;
  held.lease = std::move(lease);
  changed_.SignalAll();
}

void LeaseClient::Drop(Held& held) {
  if (!held.dropped) to_release_.push_back(held.lease.lease_id());
  held.dropped = true;
  held.due = absl::InfinitePast();  // re-acquire now
  changed_.SignalAll();
}

void LeaseClient::Maintain(const std::string& provider, const Held& held) {
  const absl::Time now = absl::Now();
  bool acquire = held.dropped || held.stale;
  if (!acquire && held.lease.has_key_retires_at() &&
      now >= core::FromProtoTime(held.lease.key_retires_at()) - options_.retire_margin) {
    acquire = true;  // the key retires soon: move to the current one
  }
  if (!acquire) {
    v1::RenewLeaseRequest request;
    request.set_lease_id(held.lease.lease_id());
    if (options_.ttl > absl::ZeroDuration()) {
      core::ToProtoDuration(options_.ttl, request.mutable_ttl());
    }
    absl::StatusOr<v1::Lease> renewed = connection_->RenewLease(request);
    if (renewed.ok()) {
      absl::MutexLock lock(&mu_);
      auto it = held_.find(provider);
      if (it != held_.end() && it->second.lease.lease_id() == renewed->lease_id() &&
          !it->second.dropped) {
        it->second.expires_at = core::FromProtoTime(renewed->expires_at());
        it->second.received = absl::Now();
        it->second.due = DueFor(*renewed, it->second.received);
        it->second.lease = *std::move(renewed);
      }
      return;
    }
    // The broker forgot the lease (restarted without persistent state, or it expired) or will
    // not renew it (its key retired): take a new one. Anything else: try again later.
    acquire = absl::IsNotFound(renewed.status()) || absl::IsFailedPrecondition(renewed.status());
    if (acquire && Replaced(provider, held.lease.lease_id())) return;
  }
  if (acquire && Acquire(provider).ok()) return;
  absl::MutexLock lock(&mu_);
  auto it = held_.find(provider);
  if (it != held_.end() && it->second.lease.lease_id() == held.lease.lease_id()) {
    it->second.due = absl::Now() + options_.retry_interval;
  }
}

bool LeaseClient::Replaced(const std::string& provider, const std::string& lease_id) {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(provider);
  return it != held_.end() && it->second.lease.lease_id() != lease_id;
}

void LeaseClient::RenewLoop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    if (!to_release_.empty()) {
      std::vector<std::string> ids = std::move(to_release_);
      to_release_.clear();
      mu_.Unlock();
      for (const std::string& id : ids) ReleaseQuietly(id);
      mu_.Lock();
      continue;
    }
    absl::Time next = absl::InfiniteFuture();
    std::string provider;
    for (const auto& [p, held] : held_) {
      if (held.due < next) {
        next = held.due;
        provider = p;
      }
    }
    if (next > absl::Now()) {
      changed_.WaitWithDeadline(&mu_, next);
      continue;
    }
    const Held held = held_[provider];
    mu_.Unlock();
    Maintain(provider, held);
    mu_.Lock();
  }
}

void LeaseClient::OnEvent(const v1::KeyEvent& event) {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(event.provider());
  if (it == held_.end()) return;
  Held& held = it->second;
  const bool ours = event.key_version() == held.lease.key_version();
  switch (event.type()) {
    case v1::KeyEvent::ROTATED:
      if (!ours) {
        held.stale = true;
        held.due = absl::InfinitePast();
        changed_.SignalAll();
      }
      break;
    case v1::KeyEvent::RETIRING:
      if (ours && event.has_retires_at()) {
        *held.lease.mutable_key_retires_at() = event.retires_at();
        held.due = std::min(held.due, DueFor(held.lease, held.received));
        changed_.SignalAll();
      }
      break;
    case v1::KeyEvent::RETIRED:
    case v1::KeyEvent::QUARANTINED:
    case v1::KeyEvent::REVOKED:
      if (ours) Drop(held);
      break;
    case v1::KeyEvent::SNAPSHOT:
      // After a reconnect: what changed while the stream was down.
      if (!ours) break;
      if (event.state() == v1::KEY_STATE_RETIRED || event.state() == v1::KEY_STATE_QUARANTINED ||
          event.state() == v1::KEY_STATE_REVOKED) {
        Drop(held);
      } else if (event.state() == v1::KEY_STATE_PREVIOUS) {
        held.stale = true;
        held.due = absl::InfinitePast();
        changed_.SignalAll();
      }
      break;
    default:
      break;
  }
}

void LeaseClient::WatchLoop() {
  while (true) {
    std::shared_ptr<KeyEventStream> stream = connection_->WatchKeys(v1::WatchKeysRequest());
    {
      absl::MutexLock lock(&mu_);
      if (stop_) {
        stream->Cancel();
        return;
      }
      stream_ = stream;
    }
    while (true) {
      absl::StatusOr<std::optional<v1::KeyEvent>> event = stream->Next();
      if (!event.ok() || !event->has_value()) break;
      OnEvent(**event);
    }
    absl::MutexLock lock(&mu_);
    stream_.reset();
    if (stop_) return;
    changed_.WaitWithTimeout(&mu_, options_.retry_interval);  // or until the client stops
    if (stop_) return;
  }
}

void LeaseClient::ReleaseQuietly(const std::string& lease_id) {
  v1::ReleaseLeaseRequest request;
  request.set_lease_id(lease_id);
  // Best effort: a lease not released expires by itself at the broker.
  connection_->ReleaseLease(request).IgnoreError();
}

absl::StatusOr<std::string> LeaseClient::ReportAuthFailure(const std::string& provider,
                                                           int http_status,
                                                           const std::string& error_code,
                                                           const std::string& body) {
  v1::ReportAuthFailureRequest request;
  {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(provider);
    if (it == held_.end() || it->second.dropped) {
      return absl::FailedPreconditionError(absl::StrCat("no lease held for ", provider));
    }
    request.set_lease_id(it->second.lease.lease_id());
  }
  request.set_http_status(http_status);
  request.set_error_code(error_code);
  request.set_body(body.substr(0, 4096));
  absl::StatusOr<v1::ReportAuthFailureResponse> response = connection_->ReportAuthFailure(request);
  if (!response.ok()) return response.status();
  if (response->newer_key_available()) {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(provider);
    if (it != held_.end() && it->second.lease.lease_id() == request.lease_id()) {
      it->second.stale = true;
      it->second.due = absl::InfinitePast();
      changed_.SignalAll();
    }
  }
  return response->classification();
}

}  // namespace credbroker::client
