// ThreadSanitizer builds only (CB_TSAN): happens-before edges for Debian's Abseil.
//
// Debian's libabsl_synchronization is not built with -fsanitize=thread, so TSan cannot see that
// absl::Mutex::Unlock on one thread happens before Lock on another, and reports a race on every
// piece of data a Mutex guards. Rather than suppress those reports (which would hide real races on
// the same data), this file interposes the library's out-of-line entry points: each one calls the
// real function (found with dlsym(RTLD_NEXT)) and tells TSan about the edge it creates, with
// __tsan_release before a lock is given up and __tsan_acquire after it is taken. Conditions passed
// to LockWhen/Await are wrapped so that they, too, run between an acquire and a release: Abseil
// evaluates them with the lock held, out of our wrapper's sight. Reader locks are treated like
// writer locks (a little more ordering than real, never less).
//
// Linked into the test executables of the tsan preset only (an OBJECT library, so the definitions
// land in the executable and take precedence over the shared library's).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace {

template <typename Fn>
Fn Real(const char* mangled) {
  void* sym = dlsym(RTLD_NEXT, mangled);
  if (sym == nullptr) {
    std::fprintf(stderr, "tsan annotations: %s not found in Abseil\n", mangled);
    std::abort();
  }
  return reinterpret_cast<Fn>(sym);
}

#define CB_REAL(type, mangled) static const auto real = Real<type>(mangled)

// A Condition that runs the caller's between an acquire and a release of the mutex's TSan sync
// object: Abseil evaluates it with the lock held (on the waiting thread, or on the thread that
// unlocks), and the waiting thread may then sleep, i.e. give the lock up inside the library.
struct AcquiringCondition {
  const absl::Condition* inner;
  const absl::Mutex* mu;
  static bool Eval(AcquiringCondition* self) {
    auto* mu = const_cast<absl::Mutex*>(self->mu);
    __tsan_acquire(mu);
    const bool met = self->inner->Eval();
    __tsan_release(mu);
    return met;
  }
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  CB_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  CB_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() {
  CB_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  CB_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() {
  CB_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  CB_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::LockWhen(const Condition& cond) {
  CB_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  AcquiringCondition wrapped{&cond, this};
  real(this, Condition(&AcquiringCondition::Eval, &wrapped));
  __tsan_acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  CB_REAL(void (*)(Mutex*, const Condition&),
          "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  AcquiringCondition wrapped{&cond, this};
  real(this, Condition(&AcquiringCondition::Eval, &wrapped));
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  CB_REAL(bool (*)(Mutex*, const Condition&, Duration),
          "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  AcquiringCondition wrapped{&cond, this};
  bool met = real(this, Condition(&AcquiringCondition::Eval, &wrapped), timeout);
  __tsan_acquire(this);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  CB_REAL(bool (*)(Mutex*, const Condition&, Time),
          "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  AcquiringCondition wrapped{&cond, this};
  bool met = real(this, Condition(&AcquiringCondition::Eval, &wrapped), deadline);
  __tsan_acquire(this);
  return met;
}

void Mutex::Await(const Condition& cond) {
  CB_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  AcquiringCondition wrapped{&cond, this};
  __tsan_release(this);
  real(this, Condition(&AcquiringCondition::Eval, &wrapped));
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  CB_REAL(bool (*)(Mutex*, const Condition&, Duration),
          "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  AcquiringCondition wrapped{&cond, this};
  __tsan_release(this);
  bool met = real(this, Condition(&AcquiringCondition::Eval, &wrapped), timeout);
  __tsan_acquire(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  CB_REAL(bool (*)(Mutex*, const Condition&, Time),
          "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  AcquiringCondition wrapped{&cond, this};
  __tsan_release(this);
  bool met = real(this, Condition(&AcquiringCondition::Eval, &wrapped), deadline);
  __tsan_acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  CB_REAL(void (*)(CondVar*, Mutex*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  CB_REAL(bool (*)(CondVar*, Mutex*, Duration),
          "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  bool timed_out = real(this, mu, timeout);
  __tsan_acquire(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  CB_REAL(bool (*)(CondVar*, Mutex*, Time),
          "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  bool timed_out = real(this, mu, deadline);
  __tsan_acquire(mu);
  return timed_out;
}

void Notification::Notify() {
  CB_REAL(void (*)(Notification*), "_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  CB_REAL(void (*)(const Notification*), "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  CB_REAL(bool (*)(const Notification*, Duration),
          "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool BlockingCounter::DecrementCount() {
  CB_REAL(bool (*)(BlockingCounter*), "_ZN4absl7debian315BlockingCounter14DecrementCountEv");
  __tsan_release(this);
  return real(this);
}

void BlockingCounter::Wait() {
  CB_REAL(void (*)(BlockingCounter*), "_ZN4absl7debian315BlockingCounter4WaitEv");
  real(this);
  __tsan_acquire(this);
}

ABSL_NAMESPACE_END
}  // namespace absl
