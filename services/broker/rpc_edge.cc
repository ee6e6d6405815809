#include "rpc_edge.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::broker {

absl::StatusOr<identity::Identity> Authenticate(grpc::CallbackServerContext* ctx, const Edge& edge,
                                                absl::string_view method) {
  // audit.fail_closed: nothing is served that cannot be audited (and the refusal itself is not
  // audited: it would only fill the queue that is full or failing).
  if (edge.audit != nullptr && !edge.audit->Accepting()) {
    return core::WithReason(
        absl::UnavailableError("the audit log cannot be written; requests are refused until it "
                               "can (audit.fail_closed)"),
        "AUDIT_UNAVAILABLE");
  }
  identity::RequestCredentials creds;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) creds.authorization = absl::string_view(it->second.data(), it->second.size());
  // Set by gRPC only for a client certificate that verified against the client CA bundle.
  std::shared_ptr<const grpc::AuthContext> auth_ctx = ctx->auth_context();
  if (auth_ctx && auth_ctx->IsPeerAuthenticated()) {
    for (const auto& v : auth_ctx->FindPropertyValues("peer_spiffe_id")) {
      creds.peer_spiffe_ids.emplace_back(v.data(), v.size());
    }
    for (const auto& v : auth_ctx->FindPropertyValues("peer_uri")) {
      creds.peer_uris.emplace_back(v.data(), v.size());
    }
    for (const auto& v : auth_ctx->FindPropertyValues("peer_dns")) {
      creds.peer_dns_names.emplace_back(v.data(), v.size());
    }
  }
  absl::StatusOr<identity::Identity> who = edge.auth->Authenticate(creds);
  if (!who.ok()) {
    std::string reason = core::ReasonOf(who.status());
    edge.metrics->CallerAuthFailure(identity::AuthFailureLabel(reason));
    if (reason.empty()) reason = "UNAUTHENTICATED";
    std::optional<uint64_t> folded_before = 0;
    if (edge.auth_folder != nullptr) {
      folded_before =
          edge.auth_folder->Admit(identity::AuthFailureFolder::PeerAddress(ctx->peer()));
    }
    if (edge.audit != nullptr && folded_before.has_value()) {
      if (*folded_before > 0) {
        absl::StrAppend(&reason, "; ", *folded_before,
                        " more failures from this peer were not audited one by one");
      }
      edge.audit->Record({std::string(method), "", "", "", "", "", "", "deny", reason});
    }
  }
  return who;
}

}  // namespace credbroker::broker
