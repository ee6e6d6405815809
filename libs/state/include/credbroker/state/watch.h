// A registered watch on a store (leases, key-version states): destroying it stops delivery.
// Never destroy a watch from inside its own callback.
#pragma once

namespace credbroker::state {

class Watch {
 public:
  virtual ~Watch() = default;
};

}  // namespace credbroker::state
