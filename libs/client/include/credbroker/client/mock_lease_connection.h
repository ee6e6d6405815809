// A gMock LeaseConnection, for services that test their use of LeaseClient without a broker:
//
//   auto mock = std::make_shared<credbroker::client::MockLeaseConnection>();
//   EXPECT_CALL(*mock, AcquireLease).WillOnce(Return(lease));
//   credbroker::client::LeaseClient client(mock, {.watch = false});
#pragma once

#include <memory>
#include <optional>

#include "credbroker/client/lease_connection.h"
#include "gmock/gmock.h"

namespace credbroker::client {

class MockLeaseConnection : public LeaseConnection {
 public:
  MOCK_METHOD(absl::StatusOr<v1::Lease>, AcquireLease, (const v1::AcquireLeaseRequest&),
              (override));
  MOCK_METHOD(absl::StatusOr<v1::Lease>, RenewLease, (const v1::RenewLeaseRequest&), (override));
  MOCK_METHOD(absl::Status, ReleaseLease, (const v1::ReleaseLeaseRequest&), (override));
  MOCK_METHOD(absl::StatusOr<v1::ReportAuthFailureResponse>, ReportAuthFailure,
              (const v1::ReportAuthFailureRequest&), (override));
  MOCK_METHOD(std::unique_ptr<KeyEventStream>, WatchKeys, (const v1::WatchKeysRequest&),
              (override));
};

class MockKeyEventStream : public KeyEventStream {
 public:
  MOCK_METHOD((absl::StatusOr<std::optional<v1::KeyEvent>>), Next, (), (override));
  MOCK_METHOD(void, Cancel, (), (override));
};

}  // namespace credbroker::client
