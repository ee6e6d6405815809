#include "credbroker/core/clock.h"

namespace credbroker::core {

const SystemClock* SystemClock::Get() {
  static const SystemClock* const kClock = new SystemClock();
  return kClock;
}

}  // namespace credbroker::core
