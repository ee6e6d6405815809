#include "credbroker/core/process.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace credbroker::core {
namespace {

// Runs in a child process (the settings are process-wide and one-way): the exit code says which
// check failed, 0 when all held.
int HardenAndCheck() {
  if (!HardenProcess().ok()) return 10;
  if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return 11;
  rlimit core{};
  if (getrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_cur != 0 || core.rlim_max != 0) return 12;
  const mode_t mask = umask(0);
  if (mask != 077) return 13;
  return 0;
}

TEST(HardenProcessTest, NoCoreDumpsNotDumpableAndPrivateFiles) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(HardenAndCheck());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: failed, 11: dumpable, 12: core limit, 13: umask";
}

}  // namespace
}  // namespace credbroker::core
