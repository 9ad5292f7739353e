//! The scheduler against a fake clock and a fake network: a loop that ticks it, runs each
//! action against a server that is up or down, and records what was done when.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fake network and clock around one scheduler.
struct Sim {
    t0: Instant,
    now: Instant,
    sched: Scheduler,
    /// What the server does with a try: `None` answers, `Some(f)` fails with `f`.
    server: Option<Failure>,
    /// How long a sync takes.
    sync_takes: Duration,
    /// (time since start, action) of every action started.
    log: Vec<(Duration, Action)>,
    syncs_running: u32,
    max_running: u32,
    /// Whether the last action succeeded.
    last_ok: Option<bool>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            sched: Scheduler::seeded(Config::default(), seed),
            server: None,
            sync_takes: ms(200),
            log: vec![],
            syncs_running: 0,
            max_running: 0,
            last_ok: None,
        }
    }
    fn at(&self) -> Duration {
        self.now - self.t0
    }
    fn event(&mut self, e: Event) {
        self.sched.handle(self.now, e);
    }
    /// Runs the loop until `until` (since start): sleep to the next wake, tick, run.
    fn run_until(&mut self, until: Duration) {
        let end = self.t0 + until;
        loop {
            let Some(wake) = self.sched.next_wake(self.now) else {
                self.now = end;
                return;
            };
            if wake > end {
                self.now = end;
                return;
            }
            self.now = wake;
            let Some(action) = self.sched.tick(self.now) else {
                // A wake with nothing to do must not repeat at the same instant forever.
                assert!(
                    self.sched.next_wake(self.now) != Some(self.now),
                    "woke at {:?} with nothing to do",
                    self.at()
                );
                continue;
            };
            self.log.push((self.at(), action));
            match action {
                Action::Probe => {
                    self.now += ms(50);
                    // A probe is answered by any server that answers at all.
                    let e = match self.server {
                        Some(Failure::Unreachable) => Event::ProbeFailed(Failure::Unreachable),
                        _ => Event::ProbeOk,
                    };
                    self.last_ok = Some(matches!(e, Event::ProbeOk));
                    self.sched.handle(self.now, e);
                }
                Action::Sync { .. } => {
                    self.syncs_running += 1;
                    self.max_running = self.max_running.max(self.syncs_running);
                    assert!(self.sched.syncing());
                    // Another tick while it runs starts nothing.
                    assert_eq!(self.sched.tick(self.now), None);
                    self.now += self.sync_takes;
                    self.syncs_running -= 1;
                    let e = match self.server {
                        None => Event::SyncOk,
                        Some(f) => Event::SyncFailed(f),
                    };
                    self.last_ok = Some(e == Event::SyncOk);
                    self.sched.handle(self.now, e);
                }
            }
        }
    }
    fn syncs(&self) -> Vec<(Duration, Reason)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Sync { reason } => Some((*t, *reason)),
                Action::Probe => None,
            })
            .collect()
    }
    fn probes_between(&self, from: Duration, to: Duration) -> usize {
        self.log
            .iter()
            .filter(|(t, a)| *a == Action::Probe && *t >= from && *t < to)
            .count()
    }
}

/// A started app with the server up: a probe, then a sync (reachable), then quiet.
fn settled(seed: u64) -> Sim {
    let mut sim = Sim::new(seed);
    sim.run_until(s(1));
    assert_eq!(sim.log[0].1, Action::Probe);
    assert_eq!(sim.syncs().len(), 1);
    assert_eq!(sim.syncs()[0].1, Reason::Reachable);
    sim
}

#[test]
fn starts_with_a_probe_then_a_sync_and_reads_online() {
    let sim = settled(1);
    assert!(sim.sched.online(sim.now));
    assert_eq!(sim.sched.status(sim.now), Status::Online);
}

#[test]
fn a_save_syncs_after_the_debounce() {
    let mut sim = settled(2);
    sim.now = sim.t0 + s(10);
    sim.event(Event::Saved { urgent: false });
    sim.run_until(s(30));
    let syncs = sim.syncs();
    assert_eq!(syncs.len(), 2, "{syncs:?}");
    assert_eq!(syncs[1], (s(15), Reason::Saved));
    assert!(!sim.sched.work_waiting());
}

#[test]
fn saves_in_a_burst_go_in_one_sync_but_wait_no_longer_than_max_wait() {
    let mut sim = settled(3);
    // A save every 3 s for a minute: the debounce never runs out, max_wait does.
    for i in 0..20 {
        sim.run_until(s(10 + 3 * i));
        sim.event(Event::Saved { urgent: false });
    }
    sim.run_until(s(80));
    let saves: Vec<_> = sim
        .syncs()
        .into_iter()
        .filter(|(_, r)| *r == Reason::Saved)
        .collect();
    assert_eq!(
        saves[0].0,
        s(40),
        "first save at 10 s, max_wait 30 s: {saves:?}"
    );
    assert!(saves.len() <= 3, "{saves:?}");
    assert!(!sim.sched.work_waiting());
}

#[test]
fn an_urgent_save_syncs_at_once() {
    let mut sim = settled(4);
    sim.run_until(s(20));
    sim.event(Event::Saved { urgent: true });
    sim.run_until(s(21));
    assert_eq!(sim.syncs().last(), Some(&(s(20), Reason::Urgent)));
}

#[test]
fn an_urgent_save_tries_at_once_even_while_the_server_is_unreachable() {
    let mut sim = settled(5);
    sim.server = Some(Failure::Unreachable);
    sim.run_until(s(100));
    let before = sim.syncs().len();
    sim.event(Event::Saved { urgent: true });
    sim.run_until(s(100) + ms(10));
    assert_eq!(sim.syncs().len(), before + 1);
    assert_eq!(sim.syncs().last().unwrap().1, Reason::Urgent);
}

#[test]
fn a_save_during_a_sync_waits_for_the_next_one() {
    let mut sched = Scheduler::seeded(Config::default(), 6);
    let t = Instant::now();
    assert_eq!(sched.tick(t), Some(Action::Probe));
    sched.handle(t, Event::ProbeOk);
    assert!(matches!(sched.tick(t), Some(Action::Sync { .. })));
    sched.handle(t + s(1), Event::SyncOk);
    sched.handle(t + s(10), Event::Saved { urgent: false });
    assert_eq!(
        sched.tick(t + s(15)),
        Some(Action::Sync {
            reason: Reason::Saved
        })
    );
    // A save while that sync runs, which may have read the outbox before it.
    sched.handle(t + s(16), Event::Saved { urgent: false });
    sched.handle(t + s(18), Event::SyncOk);
    assert!(sched.work_waiting(), "the save during the sync still waits");
    assert_eq!(sched.next_wake(t + s(18)), Some(t + s(21)));
    assert_eq!(
        sched.tick(t + s(21)),
        Some(Action::Sync {
            reason: Reason::Saved
        })
    );
    sched.handle(t + s(22), Event::SyncOk);
    assert!(!sched.work_waiting());
}

#[test]
fn never_two_syncs_at_once_and_a_tap_while_syncing_waits() {
    let mut sched = Scheduler::seeded(Config::default(), 7);
    let t = Instant::now();
    sched.handle(t, Event::Tapped);
    assert!(matches!(sched.tick(t), Some(Action::Sync { .. })));
    sched.handle(t, Event::Tapped);
    sched.handle(t, Event::Saved { urgent: true });
    assert_eq!(sched.tick(t + s(1)), None);
    assert_eq!(sched.next_wake(t + s(1)), None);
    sched.handle(t + s(2), Event::SyncOk);
    // The tap made during the sync runs now.
    assert_eq!(
        sched.tick(t + s(2)),
        Some(Action::Sync {
            reason: Reason::Tapped
        })
    );
}

#[test]
fn feedback_is_fetched_every_few_minutes_and_probes_keep_online_true() {
    let mut sim = settled(8);
    sim.run_until(s(30 * 60));
    let feedback: Vec<_> = sim
        .syncs()
        .into_iter()
        .filter(|(_, r)| *r == Reason::Feedback)
        .collect();
    // One every 5 min (the first at about 5 min), give or take the sync's own time.
    assert!((5..=6).contains(&feedback.len()), "{feedback:?}");
    for w in feedback.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= s(300) && gap <= s(301), "{gap:?}");
    }
    // A probe at most every 45 s between them: online never lapses.
    let probes = sim.probes_between(s(60), s(30 * 60));
    assert!((30..=40).contains(&probes), "{probes}");
    // Online at every moment: no gap between successes reaches `online_for`.
    let times: Vec<Duration> = sim.log.iter().map(|(t, _)| *t).collect();
    for w in times.windows(2) {
        assert!(w[1] - w[0] < Config::default().online_for, "{w:?}");
    }
    assert!(sim.sched.online(sim.now));
}

#[test]
fn the_feedback_interval_is_a_setting() {
    let mut sim = settled(9);
    sim.sched.set_config(Config {
        feedback_every: s(60),
        ..Config::default()
    });
    sim.run_until(s(10 * 60));
    let feedback = sim
        .syncs()
        .into_iter()
        .filter(|(_, r)| *r == Reason::Feedback)
        .count();
    assert!((9..=10).contains(&feedback), "{feedback}");
}

#[test]
fn online_only_after_a_recent_success_and_offline_at_once_after_a_failure() {
    let mut sched = Scheduler::seeded(Config::default(), 10);
    let t = Instant::now();
    assert_eq!(sched.status(t), Status::Checking);
    assert_eq!(sched.tick(t), Some(Action::Probe));
    sched.handle(t + ms(40), Event::ProbeOk);
    assert_eq!(sched.status(t + s(1)), Status::Online);
    // No news for a minute: no longer claimed online.
    assert!(sched.online(t + s(59)));
    assert!(!sched.online(t + s(61)));
    assert_eq!(sched.status(t + s(61)), Status::Checking);
    // A failure: offline at once, with the next try.
    let _ = sched.tick(t + s(1));
    sched.handle(t + s(2), Event::SyncFailed(Failure::Unreachable));
    assert!(!sched.online(t + s(2)));
    assert!(matches!(
        sched.status(t + s(2)),
        Status::Offline { retry_in: Some(_) }
    ));
    assert!(sched.status(t + s(2)).zh().starts_with("离线"));
}

#[test]
fn the_backoff_doubles_to_its_cap_with_full_jitter() {
    let c = Config::default();
    assert_eq!(backoff(&c, 1, 0.999_999), c.backoff_base.mul_f64(0.999_999));
    assert_eq!(backoff(&c, 3, 0.5), c.backoff_base * 2);
    assert_eq!(backoff(&c, 30, 0.5), c.backoff_cap / 2);
    assert_eq!(backoff(&c, 1, 0.0), MIN_RETRY);
    assert!(backoff(&c, 100, 1.0) <= c.backoff_cap);
}

#[test]
fn while_unreachable_probes_back_off_up_to_the_cap() {
    let mut sim = settled(11);
    sim.server = Some(Failure::Unreachable);
    sim.run_until(s(3600));
    let tries: Vec<Duration> = sim
        .log
        .iter()
        .filter(|(t, _)| *t > s(1))
        .map(|(t, _)| *t)
        .collect();
    assert!(tries.len() > 5);
    for w in tries.windows(2) {
        assert!(w[1] - w[0] <= Config::default().backoff_cap + ms(300));
    }
    // Over the last half hour the tries are at most cap-bound: few, not a busy loop.
    let late = tries.iter().filter(|t| **t > s(1800)).count();
    assert!(late < 60, "{late}");
    assert!(
        late >= 6,
        "{late}: the cap is 5 min, full jitter averages half of it"
    );
    assert!(matches!(sim.sched.status(sim.now), Status::Offline { .. }));
}

#[test]
fn the_server_back_brings_a_sync_with_no_tap() {
    let mut sim = settled(12);
    sim.server = Some(Failure::Unreachable);
    sim.run_until(s(120));
    sim.event(Event::Saved { urgent: false });
    sim.run_until(s(200));
    assert!(sim.sched.work_waiting());
    sim.server = None;
    sim.run_until(s(600));
    assert!(!sim.sched.work_waiting());
    let after: Vec<_> = sim
        .syncs()
        .into_iter()
        .filter(|(t, _)| *t >= s(200))
        .collect();
    assert_eq!(after[0].1, Reason::Reachable, "{after:?}");
    // Within the cap of the server coming back.
    assert!(after[0].0 <= s(200) + Config::default().backoff_cap + s(1));
    assert_eq!(sim.sched.status(sim.now), Status::Online);
}

#[test]
fn a_busy_server_is_retried_with_backoff_not_hammered() {
    let mut sim = settled(13);
    sim.server = Some(Failure::Retryable);
    sim.run_until(s(1200));
    let late = sim.log.iter().filter(|(t, _)| *t > s(600)).count();
    assert!(late < 10, "{late} tries in 10 min against a busy server");
    assert!(matches!(sim.sched.status(sim.now), Status::Busy { .. }));
    // Once the first sync failed (the feedback sync at 5 min), the retries are syncs: a busy
    // server answers probes.
    assert!(
        sim.log
            .iter()
            .filter(|(t, _)| *t > s(301))
            .all(|(_, a)| matches!(a, Action::Sync { .. }))
    );
}

#[test]
fn an_expired_session_stops_syncing_until_the_worker_signs_in() {
    let mut sim = settled(14);
    sim.server = Some(Failure::NeedsSignIn);
    sim.event(Event::Tapped);
    sim.run_until(s(2));
    assert_eq!(sim.sched.status(sim.now), Status::NeedsSignIn);
    let n = sim.syncs().len();
    sim.event(Event::Saved { urgent: true });
    sim.run_until(s(1800));
    assert_eq!(sim.syncs().len(), n, "no sync while signed out");
    assert!(sim.log.len() > n + 2, "probes go on");
    assert_eq!(sim.sched.status(sim.now), Status::NeedsSignIn);
    // Signed in again: the waiting work goes.
    sim.server = None;
    sim.event(Event::SignedIn);
    sim.run_until(s(1802));
    assert!(!sim.sched.work_waiting());
    assert_eq!(sim.sched.status(sim.now), Status::Online);
}

#[test]
fn a_tap_tries_again_even_when_blocked() {
    let mut sched = Scheduler::seeded(Config::default(), 15);
    let t = Instant::now();
    sched.handle(t, Event::Tapped);
    let _ = sched.tick(t);
    sched.handle(t, Event::SyncFailed(Failure::NeedsUpdate));
    assert_eq!(sched.status(t), Status::NeedsUpdate);
    sched.handle(t + s(1), Event::Tapped);
    assert_eq!(
        sched.tick(t + s(1)),
        Some(Action::Sync {
            reason: Reason::Tapped
        })
    );
}

#[test]
fn no_network_reported_means_no_tries_and_its_return_spreads_them() {
    let mut sim = settled(16);
    sim.event(Event::NetworkDown);
    sim.event(Event::Saved { urgent: false });
    let n = sim.log.len();
    sim.run_until(s(600));
    assert_eq!(sim.log.len(), n);
    assert_eq!(sim.sched.status(sim.now), Status::NoNetwork);
    sim.event(Event::NetworkUp);
    sim.run_until(s(600) + Config::default().reconnect_spread + s(1));
    assert!(!sim.sched.work_waiting());
}

#[test]
fn a_changed_server_is_tried_at_once() {
    let mut sim = settled(17);
    sim.server = Some(Failure::Unreachable);
    sim.run_until(s(900));
    sim.server = None;
    sim.event(Event::ServerChanged);
    let n = sim.log.len();
    sim.run_until(s(901));
    assert_eq!(sim.log[n].1, Action::Probe);
    assert_eq!(sim.log[n].0, s(900));
    assert_eq!(sim.sched.status(sim.now), Status::Online);
}

/// A thousand phones whose network returns in the same second: their first tries spread over
/// the reconnect window rather than all landing at once.
#[test]
fn a_thousand_phones_back_at_once_spread_their_tries() {
    let t = Instant::now();
    let mut per_second = [0u32; 11];
    for seed in 0..1000 {
        let mut sched = Scheduler::seeded(Config::default(), seed);
        sched.handle(t, Event::Saved { urgent: false });
        sched.handle(t, Event::NetworkUp);
        let wake = sched.next_wake(t).unwrap();
        let at = (wake - t).as_secs() as usize;
        per_second[at.min(10)] += 1;
    }
    assert_eq!(per_second[10], 0);
    for n in &per_second[..10] {
        assert!((50..=150).contains(n), "{per_second:?}");
    }
}

proptest! {
    /// Whatever the server does and whatever the worker does, at any moment: never two
    /// actions at once, no busy loop, every save eventually sent once the server answers,
    /// and the pill never says online after a failure.
    #[test]
    fn any_story_ends_with_every_save_sent(
        seed in any::<u64>(),
        steps in proptest::collection::vec((0u64..400, 0u8..8), 1..40),
    ) {
        let mut sim = Sim::new(seed);
        let mut t = 0;
        for (gap, what) in steps {
            t += gap;
            sim.run_until(s(t));
            match what {
                0 => sim.event(Event::Saved { urgent: false }),
                1 => sim.event(Event::Saved { urgent: true }),
                2 => sim.event(Event::Tapped),
                3 => sim.server = Some(Failure::Unreachable),
                4 => sim.server = Some(Failure::Retryable),
                5 => sim.server = None,
                6 => sim.event(Event::NetworkUp),
                _ => sim.event(Event::Saved { urgent: false }),
            }
            if sim.last_ok == Some(false) {
                prop_assert!(!sim.sched.online(sim.now));
            }
        }
        prop_assert!(sim.max_running <= 1);
        sim.server = None;
        sim.run_until(s(t + 600));
        prop_assert!(!sim.sched.work_waiting());
        prop_assert_eq!(sim.sched.status(sim.now), Status::Online);
    }
}
