// Process hardening for a broker that holds provider keys in memory: no core dumps (RLIMIT_CORE
// 0), not dumpable (PR_SET_DUMPABLE 0: no core file and no ptrace attach by same-user processes
// without CAP_SYS_PTRACE), and a umask of 077, so every file and folder the broker creates (the
// state file and its WAL, the audit log, the data dir) is readable by its own user only.
// Called once by main() before any thread starts.
// Errors: INTERNAL naming the call that failed.
#pragma once

#include "absl/status/status.h"

namespace credbroker::core {

absl::Status HardenProcess();

}  // namespace credbroker::core
