// Test file-system helpers: a temp dir removed on destruction, a file writer, and a writer that
// lays out a directory exactly like the kubelet's AtomicWriter does for a mounted Secret.
#pragma once

#include <map>
#include <string>

namespace credbroker::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& contents);
std::string ReadFile(const std::string& path);

// Writes `files` (name → contents) into `dir` the way kubelet updates a Secret volume: a new
// timestamped directory, a `..data_tmp` symlink renamed over `..data`, visible names that are
// symlinks to `..data/<name>`, stale names removed, the old timestamped directory deleted.
void WriteK8sSecretDir(const std::string& dir, const std::map<std::string, std::string>& files);

}  // namespace credbroker::testing
