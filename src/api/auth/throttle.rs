//! Failed-login throttling: after 5 failures within a minute for one username or from one client
//! address, further attempts for it are refused (429 with `Retry-After`) until the oldest of those
//! failures is a minute old. Kept in memory, per server process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures within [`WINDOW`] that block further attempts.
pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys kept before stale ones are swept; past twice this, new keys are not tracked (the
/// address key still throttles whoever floods the table with usernames).
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// The keys a login attempt counts against.
pub fn keys(username: &str, address: Option<std::net::IpAddr>) -> Vec<String> {
    let mut keys = vec![format!("user:{}", username.to_lowercase())];
    if let Some(address) = address {
        keys.push(format!("address:{address}"));
    }
    keys
}

impl Throttle {
    /// When any of `keys` is blocked at `now`: how long until it is not.
    pub fn blocked(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let mut failures = self.lock();
        keys.iter()
            .filter_map(|key| {
                let times = failures.get_mut(key)?;
                forget_old(times, now);
                (times.len() >= MAX_FAILURES).then(|| {
                    let oldest = times.front().copied().unwrap_or(now);
                    WINDOW.saturating_sub(now.saturating_duration_since(oldest))
                })
            })
            .max()
    }

    pub fn record_failure(&self, keys: &[String], now: Instant) {
        let mut failures = self.lock();
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, times| {
                forget_old(times, now);
                !times.is_empty()
            });
        }
        for key in keys {
            if failures.len() >= 2 * SWEEP_AT && !failures.contains_key(key) {
                continue;
            }
            let times = failures.entry(key.clone()).or_default();
            forget_old(times, now);
            times.push_back(now);
            while times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
    }

    /// A successful login clears its username's failures (not its address's).
    pub fn record_success(&self, username: &str) {
        self.lock().remove(&format!("user:{}", username.to_lowercase()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // Nothing panics while holding it; a poisoned map is still a valid map.
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn forget_old(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|time| now.saturating_duration_since(*time) >= WINDOW)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_in_a_minute_block_the_user_until_the_first_is_a_minute_old() {
        let throttle = Throttle::default();
        let start = Instant::now();
        let ana = keys("ana", None);
        for second in 0..5 {
            assert_eq!(throttle.blocked(&ana, start + Duration::from_secs(second)), None);
            throttle.record_failure(&ana, start + Duration::from_secs(second));
        }
        let now = start + Duration::from_secs(10);
        assert_eq!(throttle.blocked(&ana, now), Some(Duration::from_secs(50)));
        assert_eq!(
            throttle.blocked(&keys("bob", None), now),
            None,
            "other users are not blocked"
        );
        assert_eq!(throttle.blocked(&keys("ANA", None), now), Some(Duration::from_secs(50)));
        assert_eq!(throttle.blocked(&ana, start + Duration::from_secs(60)), None);
    }

    #[test]
    fn one_address_trying_many_usernames_is_blocked() {
        let throttle = Throttle::default();
        let now = Instant::now();
        let address = Some("203.0.113.9".parse().unwrap());
        for user in ["a", "b", "c", "d", "e"] {
            throttle.record_failure(&keys(user, address), now);
        }
        assert!(throttle.blocked(&keys("f", address), now).is_some());
        assert_eq!(
            throttle.blocked(&keys("f", Some("203.0.113.10".parse().unwrap())), now),
            None
        );
    }

    #[test]
    fn a_success_clears_the_username_but_not_the_address() {
        let throttle = Throttle::default();
        let now = Instant::now();
        let address = Some("198.51.100.1".parse().unwrap());
        for _ in 0..5 {
            throttle.record_failure(&keys("ana", address), now);
        }
        throttle.record_success("ana");
        assert_eq!(throttle.blocked(&keys("ana", None), now), None);
        assert!(throttle.blocked(&keys("ana", address), now).is_some());
    }
}
