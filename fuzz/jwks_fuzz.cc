// Fuzzes the JWKS parser (the document the broker reads from the cluster's /openid/v1/jwks or a
// file): any text ends in a key count or a status, never a crash.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "credbroker/identity/jwt_verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view jwks(reinterpret_cast<const char*>(data), size);
  (void)credbroker::identity::CountJwksKeys(jwks).ok();
  return 0;
}
