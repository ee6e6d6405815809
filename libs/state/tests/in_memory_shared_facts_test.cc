#include "credbroker/state/shared_facts.h"
#include "shared_facts_conformance.h"

namespace credbroker::state {
namespace {

struct InMemoryFactsFactory {
  SharedFacts* Make(absl::Duration retention) {
    facts = std::make_unique<InMemorySharedFacts>(retention);
    return facts.get();
  }
  std::unique_ptr<InMemorySharedFacts> facts;
};
INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, SharedFactsConformanceTest,
                               ::testing::Types<InMemoryFactsFactory>);

}  // namespace
}  // namespace credbroker::state
