/*
 * Rotation safety: a Promela model of one provider's key versions, the leases on them and the
 * leader's rotation work, checked exhaustively by spin within the bounds below
 * (verification/check.sh runs it, and each mutant, in CI).
 *
 * What is modelled (libs/rotation: key_state_machine, rotation_engine, rotation_scheduler):
 *   - versions: v0 starts CURRENT; the leader stages (operator) or mints (key API) v1..NV-1,
 *     probes a PENDING one (the probe is calibrated: it accepts exactly the keys the provider
 *     accepts, or is inconclusive), promotes it (the CURRENT one becomes PREVIOUS until
 *     now + OVERLAP; for a single-key provider RETIRED at once, since minting killed it), retires
 *     a PREVIOUS one when its overlap has ended and no lease holds it, or at the hard deadline
 *     (retires_at + GRACE) revoking its leases, quarantines a version the provider refuses after
 *     401 reports from two callers (its leases revoked, the newest valid version takes over), and
 *     revokes a minted key at the provider once it is RETIRED and drained, or QUARANTINED;
 *   - callers: acquire (CURRENT only), renew (CURRENT, or PREVIOUS before its retire time),
 *     release or expiry, 401 reports on a key the provider refuses;
 *   - the provider: revokes one key on its own (as an operator would in its dashboard);
 *   - leadership: two replicas, NLEAD leader changes with a new epoch each. The once-only
 *     decisions (promotion, quarantine, revocation at the provider) are read in one step and
 *     committed in a later one with compare-and-swap on the store revision and the epoch
 *     (fencing), so a deposed leader's decision in flight is refused. Time advances in ticks;
 *     the leader's scheduler pass (retirement) runs with each tick.
 * Modelling assumption: a revocation at the provider and its record in the store are one step.
 * (The broker calls the key API, then records REVOKED; a crash between the two makes the next
 * leader call again, which the API answers 404 and the broker takes as done.)
 *
 * Invariants (asserted after every step, see check()):
 *   1. at most one CURRENT version, and exactly one whenever any version is valid
 *      (CURRENT or PREVIOUS);
 *   2. a multi-key provider always has a CURRENT version, and a promotion only makes CURRENT a
 *      version whose probe the provider accepted (the new key is probed before the old one
 *      stops being served);
 *   3. no lease is issued or renewed on a RETIRED, QUARANTINED or REVOKED version, nor renewed
 *      past its version's retire time; no lease survives on a version out of service;
 *   4. a replaced version retires only when drained (after its overlap) or at its hard deadline,
 *      and always by then;
 *   5. a minted key is revoked at the provider at most once, only after retirement with no lease
 *      left or after quarantine, and by the end of the history every such key is revoked;
 *   6. after a leader change no decision is applied twice (no version promoted or quarantined
 *      twice) and none is lost (a quarantined version never comes back).
 *
 * Switches: -DSINGLE_KEY models a single-key provider (fluximage); -DMUTANT=n breaks the rule
 * that invariant n rests on (see the MUTANT blocks); spin must then report a violation.
 */

#ifndef NV
#define NV 3          /* key versions */
#endif
#ifndef TMAX
#define TMAX 5        /* ticks in a history */
#endif
#ifndef MAXL
#define MAXL 1        /* unexpired leases per version at once */
#endif
#define OVERLAP 2     /* ticks a PREVIOUS version stays valid */
#define GRACE 2       /* ticks after the overlap until the hard deadline */
#define NLEAD 1       /* leader changes */
#define MINCALLERS 2  /* distinct callers' 401 reports that start a revocation check */
#ifndef MUTANT
#define MUTANT 0
#endif

#define ABSENT 0
#define PENDING 1
#define CURRENT 2
#define PREVIOUS 3
#define RETIRED 4
#define QUARANTINED 5
#define REVOKED 6

#define NONE 0
#define PROMOTE 1
#define QUARANTINE 2
#define REVOKE 3

/* The key-state store (the truth every replica applies) and the world around it. */
byte st[NV];          /* state of each version */
bool works[NV];       /* the provider accepts the key */
bool minted[NV];      /* created by the broker through the key API */
bool accepted[NV];    /* the promotion probe accepted it */
bool refused[NV];     /* the probe got a 401/403 for it */
byte leases[NV];      /* unexpired leases on the version */
byte retires_at[NV];  /* end of the overlap of a PREVIOUS version */
byte reports[NV];     /* distinct callers that reported a 401 on it */
byte now;
byte rev;             /* store revision: every committed write increments it */
byte epoch = 1;       /* leadership epoch */
byte leader;          /* the replica that leads */
byte changes;         /* leader changes so far */
byte nextv = 1;       /* the next version to stage or mint */
bool provider_revoked;  /* the provider revoked a key on its own (once) */

/* A once-only decision in flight, per replica: read at (rev, epoch), committed later. */
byte intent_kind[2];
byte intent_v[2];
byte intent_rev[2];
byte intent_epoch[2];

/* Ghost counters for invariants 5 and 6. */
byte revocations[NV];  /* key API DELETE calls for the version */
byte promoted[NV];     /* times a promotion made it CURRENT */
byte quarantined[NV];  /* times it was quarantined */

/* Scratch variables of the atomic helpers (they never interleave; not part of the state). */
hidden byte k;
hidden byte ncur;
hidden byte nvalid;
hidden byte repl;
hidden byte was_current;
hidden byte v;  /* the version an atomic step picked */

inline check() {
  ncur = 0;
  nvalid = 0;
  for (k : 0 .. NV - 1) {
    if
    :: st[k] == CURRENT -> ncur++
    :: else
    fi;
    if
    :: st[k] == CURRENT || st[k] == PREVIOUS -> nvalid++
    :: else
    fi;
    /* 3: no lease on a version out of service */
    assert(leases[k] == 0 || st[k] == CURRENT || st[k] == PREVIOUS);
    /* 4: never PREVIOUS past the hard deadline */
    assert(st[k] != PREVIOUS || now <= retires_at[k] + GRACE);
    /* 5 */
    assert(revocations[k] <= 1);
    /* 6 */
    assert(promoted[k] <= 1 && quarantined[k] <= 1);
    assert(quarantined[k] == 0 || st[k] == QUARANTINED || st[k] == REVOKED)
  }
  /* 1 */
  assert(ncur <= 1);
  assert(nvalid == 0 || ncur == 1);
#ifndef SINGLE_KEY
  /* 2: only the provider revoking the key on its own can leave no CURRENT key */
  assert(ncur == 1 || provider_revoked)
#endif
}

/* The newest valid version that is not `v`, else the newest PENDING one; NV when none. */
inline replacement(v, out) {
  out = NV;
  for (k : 0 .. NV - 1) {
    if
    :: k != v && (st[k] == CURRENT || st[k] == PREVIOUS) -> out = k
    :: else
    fi
  }
  if
  :: out == NV ->
     for (k : 0 .. NV - 1) {
       if
       :: k != v && st[k] == PENDING -> out = k
       :: else
       fi
     }
  :: else
  fi
}

/* DecidePromote: `v` becomes CURRENT, the CURRENT one PREVIOUS (RETIRED for a single-key
 * provider, whose old key died when the new one was made), older PENDING ones superseded. */
inline promote(v) {
#if !defined(SINGLE_KEY)
  assert(accepted[v]);  /* 2: probed before the old key stops being served */
#endif
  for (k : 0 .. NV - 1) {
    if
#if MUTANT == 1
    :: false ->  /* MUTANT 1: the CURRENT version is not demoted */
#else
    :: k != v && st[k] == CURRENT ->
#endif
#ifdef SINGLE_KEY
       st[k] = RETIRED; leases[k] = 0
#else
       st[k] = PREVIOUS; retires_at[k] = now + OVERLAP
#endif
    :: k < v && st[k] == PENDING -> st[k] = RETIRED
    :: else
    fi
  };
  st[v] = CURRENT;
  promoted[v]++
}

/* DecideQuarantine: out of service at once, leases revoked, a replacement when it was CURRENT. */
inline quarantine(v) {
  was_current = (st[v] == CURRENT);
  st[v] = QUARANTINED;
  leases[v] = 0;
  quarantined[v]++;
  if
  :: was_current ->
     replacement(v, repl);
     if
     :: repl < NV -> st[repl] = CURRENT
     :: else
     fi
  :: else
  fi
}

/* DecideRetirement, run by the leader's scheduler with every tick. */
#if MUTANT == 4
#define MAY_RETIRE(v) (true)  /* MUTANT 4: retires when the overlap ends, leases or not */
#else
#define MAY_RETIRE(v) (leases[v] == 0 || now >= retires_at[v] + GRACE)
#endif
inline retirement() {
  for (k : 0 .. NV - 1) {
    if
    :: st[k] == PREVIOUS && now >= retires_at[k] && MAY_RETIRE(k) ->
       /* 4: drained after the overlap, or at the hard deadline (its leases are revoked) */
       assert(leases[k] == 0 || now >= retires_at[k] + GRACE);
       st[k] = RETIRED;
       leases[k] = 0
    :: else
    fi
  }
}

/* May a lease on v be renewed now? (LeaseBroker::Renew) */
#if MUTANT == 3
#define MAY_RENEW(v) (st[v] == CURRENT || st[v] == PREVIOUS)
#else
#define MAY_RENEW(v) (st[v] == CURRENT || (st[v] == PREVIOUS && now < retires_at[v]))
#endif

/* May the leader revoke minted key v at the provider? (RotationEngine::RevokeAtProvider) */
#if MUTANT == 5
#define MAY_REVOKE(v) (minted[v] && (st[v] == PREVIOUS || st[v] == RETIRED || st[v] == QUARANTINED))
#else
#define MAY_REVOKE(v) (minted[v] && (st[v] == RETIRED || st[v] == QUARANTINED))
#endif

/* Is a decision read at (intent_rev, intent_epoch) still valid? The store's compare-and-swap
 * and the leader's fencing epoch. */
#if MUTANT == 6
#define FENCED(r) (true)
#else
#define FENCED(r) (intent_rev[r] == rev && intent_epoch[r] == epoch)
#endif

proctype Replica(byte r) {
  do
  :: atomic {  /* stage (operator) or mint (key API) a new version */
       leader == r && nextv < NV && now < TMAX ->
       v = nextv;
       st[v] = PENDING;
       if
       :: minted[v] = true; works[v] = true
       :: minted[v] = false; works[v] = true
       :: minted[v] = false; works[v] = false  /* an operator staged a bad key */
       fi;
#ifdef SINGLE_KEY
       /* one live key per account: the new one kills every other at the provider */
       for (k : 0 .. NV - 1) {
         if
         :: k != v -> works[k] = false
         :: else
         fi
       };
#endif
       nextv++;
       rev++;
       check()
     }
  :: atomic {  /* probe a PENDING version: accepted, refused, or no conclusive answer */
       leader == r ->
       select(v : 0 .. NV - 1);
       if
       :: st[v] == PENDING && !accepted[v] && !refused[v] ->
          if
          :: works[v] -> accepted[v] = true
          :: !works[v] -> refused[v] = true
          :: true  /* inconclusive (429, 5xx, timeout): tried again later */
          fi
       :: else
       fi
     }
  :: atomic {  /* read: decide to promote a PENDING version */
       leader == r && intent_kind[r] == NONE ->
       select(v : 0 .. NV - 1);
       if
#if MUTANT == 2
       :: st[v] == PENDING && !refused[v] ->  /* MUTANT 2: promotes without a probe */
#elif defined(SINGLE_KEY)
       /* the old key is dead already: promote unless the provider positively refused it */
       :: st[v] == PENDING && !refused[v] ->
#else
       :: st[v] == PENDING && accepted[v] ->
#endif
          intent_kind[r] = PROMOTE; intent_v[r] = v; intent_rev[r] = rev;
          intent_epoch[r] = epoch
       :: else
       fi
     }
  :: atomic {  /* read: decide to quarantine a version the provider refuses */
       leader == r && intent_kind[r] == NONE ->
       select(v : 0 .. NV - 1);
       if
       :: reports[v] >= MINCALLERS && !works[v] && (st[v] == CURRENT || st[v] == PREVIOUS) ->
          intent_kind[r] = QUARANTINE; intent_v[r] = v; intent_rev[r] = rev;
          intent_epoch[r] = epoch
       :: else
       fi
     }
  :: atomic {  /* read: decide to revoke a minted key at the provider */
       leader == r && intent_kind[r] == NONE ->
       select(v : 0 .. NV - 1);
       if
       :: MAY_REVOKE(v) ->
          intent_kind[r] = REVOKE; intent_v[r] = v; intent_rev[r] = rev; intent_epoch[r] = epoch
       :: else
       fi
     }
  :: atomic {  /* commit the decision in flight, or drop it when the store moved on */
       intent_kind[r] != NONE ->
       v = intent_v[r];
       if
       :: FENCED(r) ->
          if
          :: intent_kind[r] == PROMOTE -> promote(v)
          :: intent_kind[r] == QUARANTINE -> quarantine(v)
          :: intent_kind[r] == REVOKE ->
             /* 5: only a drained retired key, or a quarantined one */
             assert(st[v] == QUARANTINED || (st[v] == RETIRED && leases[v] == 0));
             revocations[v]++;
             works[v] = false;
             st[v] = REVOKED
          fi;
          rev++
       :: else
       fi;
       intent_kind[r] = NONE;
       check()
     }
  :: atomic { now == TMAX && intent_kind[r] == NONE -> break }
  od
}

proctype Callers() {
  do
  :: atomic {  /* AcquireLease: always the CURRENT version */
       now < TMAX ->
       select(v : 0 .. NV - 1);
       if
       :: st[v] == CURRENT && leases[v] < MAXL ->
          assert(st[v] == CURRENT);  /* 3 */
          leases[v]++;
          check()
       :: else
       fi
     }
  :: atomic {  /* RenewLease */
       now < TMAX ->
       select(v : 0 .. NV - 1);
       if
       :: leases[v] > 0 && MAY_RENEW(v) ->
          assert(st[v] == CURRENT || (st[v] == PREVIOUS && now < retires_at[v]))  /* 3 */
       :: else
       fi
     }
  :: atomic {  /* ReleaseLease, or the lease expires */
       select(v : 0 .. NV - 1);
       if
       :: leases[v] > 0 -> leases[v]--; check()
       :: else
       fi
     }
  :: atomic {  /* ReportAuthFailure: a 401 from another caller on a key the provider refuses */
       now < TMAX ->
       select(v : 0 .. NV - 1);
       if
       :: leases[v] > 0 && !works[v] && reports[v] < MINCALLERS -> reports[v]++
       :: else
       fi
     }
  :: atomic { now == TMAX -> break }
  od
}

proctype Provider() {
  if
  :: atomic {  /* once, or never: the provider (or its dashboard) revokes a live key */
       now < TMAX ->
       select(v : 0 .. NV - 1);
       if
       :: works[v] && st[v] != ABSENT -> works[v] = false; provider_revoked = true
       :: else
       fi
     }
  :: true
  fi
}

proctype Time() {
  do
  :: atomic {
       now < TMAX ->
       now++;
       retirement();
       check()
     }
  :: atomic {  /* a leader change: the other replica leads, with a new epoch */
       changes < NLEAD && now < TMAX ->
       leader = 1 - leader;
       epoch++;
       changes++;
       check()
     }
  :: atomic { now == TMAX -> break }
  od
}

init {
  atomic {
    st[0] = CURRENT;
    works[0] = true;
    run Replica(0);
    run Replica(1);
    run Callers();
    run Provider();
    run Time()
  }
  /* The end of a history: once every process is done, the leader revokes what is left, and
   * every minted key out of service has been revoked exactly once (5). */
  (_nr_pr == 1);
  atomic {
    for (k : 0 .. NV - 1) {
      if
      :: MAY_REVOKE(k) && (st[k] == QUARANTINED || leases[k] == 0) ->
         revocations[k]++; st[k] = REVOKED
      :: else
      fi
    };
    for (k : 0 .. NV - 1) {
      assert(!minted[k] || st[k] == REVOKED || st[k] == CURRENT || st[k] == PREVIOUS ||
             st[k] == PENDING || (st[k] == RETIRED && leases[k] > 0));
      assert(revocations[k] <= 1)
    };
    check()
  }
}
