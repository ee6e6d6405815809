#include "credbroker/rotation/key_state_store.h"

#include "key_state_store_conformance.h"

namespace credbroker::rotation {
namespace {

struct InMemoryFactory {
  KeyStateStore* Make() { return &store; }
  InMemoryKeyStateStore store;
};
INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, KeyStateStoreConformanceTest,
                               ::testing::Types<InMemoryFactory>);

}  // namespace
}  // namespace credbroker::rotation
