//! Waiting for a condition with a deadline, instead of fixed sleeps.
//!
//! [`eventually`] (blocking) and [`eventually_async`] (tokio) call a check until it succeeds or
//! the timeout passes, sleeping between attempts (10 ms, doubling up to 200 ms). The check
//! returns anything that is an [`Attempt`]: `bool`, `Option<T>` or `Result<T, E>`. On timeout the
//! error names what was awaited, how long it waited, how many attempts it made and, for
//! `Result`, the last error seen.
//!
//! ```
//! use std::time::Duration;
//! let mut n = 0;
//! let value = testkit::eventually("n to reach 3", Duration::from_secs(5), || {
//!     n += 1;
//!     (n >= 3).then_some(n)
//! })
//! .unwrap();
//! assert_eq!(value, 3);
//! ```

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::Error;

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// The outcome of one check: done with a value, or not yet (with an optional reason).
pub trait Attempt {
    /// What a successful check yields.
    type Output;
    /// `Ok(value)` when the condition holds; `Err(reason)` when not yet, with the reason for the
    /// timeout message if there is one.
    fn into_attempt(self) -> Result<Self::Output, Option<String>>;
}

impl Attempt for bool {
    type Output = ();
    fn into_attempt(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Attempt for Option<T> {
    type Output = T;
    fn into_attempt(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Attempt for Result<T, E> {
    type Output = T;
    fn into_attempt(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Calls `check` until it succeeds or `timeout` has passed (checked at least once), blocking
/// the thread between attempts. `what` names the condition for the timeout error
/// ([`Error::Eventually`]).
pub fn eventually<A: Attempt>(
    what: impl Display,
    timeout: Duration,
    mut check: impl FnMut() -> A,
) -> Result<A::Output, Error> {
    let mut waiter = Waiter::new(timeout);
    loop {
        match check().into_attempt() {
            Ok(value) => return Ok(value),
            Err(reason) => match waiter.next_pause(reason) {
                Some(pause) => std::thread::sleep(pause),
                None => return Err(waiter.timed_out(what)),
            },
        }
    }
}

/// [`eventually`] for async checks: awaits `check()` until it succeeds or `timeout` has passed,
/// sleeping with `tokio::time::sleep` between attempts.
pub async fn eventually_async<A: Attempt, F: Future<Output = A>>(
    what: impl Display,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> Result<A::Output, Error> {
    let mut waiter = Waiter::new(timeout);
    loop {
        match check().await.into_attempt() {
            Ok(value) => return Ok(value),
            Err(reason) => match waiter.next_pause(reason) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(waiter.timed_out(what)),
            },
        }
    }
}

/// The deadline, the pause schedule and what the failed attempts said.
struct Waiter {
    start: Instant,
    timeout: Duration,
    pause: Duration,
    attempts: u32,
    last: Option<String>,
}

impl Waiter {
    fn new(timeout: Duration) -> Self {
        Self {
            start: Instant::now(),
            timeout,
            pause: FIRST_PAUSE,
            attempts: 0,
            last: None,
        }
    }

    /// Records a failed attempt; the pause before the next one, or `None` when time is up.
    fn next_pause(&mut self, reason: Option<String>) -> Option<Duration> {
        self.attempts += 1;
        if reason.is_some() {
            self.last = reason;
        }
        let left = self.timeout.checked_sub(self.start.elapsed())?;
        if left.is_zero() {
            return None;
        }
        let pause = self.pause.min(left);
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Some(pause)
    }

    fn timed_out(self, what: impl Display) -> Error {
        Error::Eventually {
            what: what.to_string(),
            waited: self.start.elapsed(),
            attempts: self.attempts,
            last: self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn returns_the_value_once_the_check_succeeds() {
        let mut calls = 0;
        let got = eventually("third call", Duration::from_secs(30), || {
            calls += 1;
            (calls == 3).then_some("done")
        })
        .unwrap();
        assert_eq!((got, calls), ("done", 3));
    }

    #[test]
    fn a_bool_check_works_and_a_true_one_is_called_once() {
        let mut calls = 0;
        eventually("true", Duration::ZERO, || {
            calls += 1;
            true
        })
        .unwrap();
        assert_eq!(calls, 1, "checked at least once, even with a zero timeout");
    }

    #[test]
    fn a_timeout_names_what_was_awaited_and_the_last_error() {
        let mut calls = 0u32;
        let err = eventually("the file to appear", Duration::from_millis(50), || {
            calls += 1;
            Err::<(), _>(format!("attempt {calls}: not there"))
        })
        .unwrap_err();
        let Error::Eventually {
            what,
            waited,
            attempts,
            last,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(what, "the file to appear");
        assert!(*waited >= Duration::from_millis(50), "{waited:?}");
        assert_eq!(*attempts, calls);
        assert_eq!(
            last.as_deref(),
            Some(&*format!("attempt {calls}: not there"))
        );
        let message = err.to_string();
        assert!(
            message.contains("the file to appear") && message.contains("not there"),
            "{message}"
        );
    }

    #[test]
    fn a_timeout_without_reasons_still_names_the_condition() {
        let err = eventually("never", Duration::from_millis(20), || None::<()>).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("timed out waiting for never after"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_async_variant_waits_for_another_task() {
        let counter = Arc::new(AtomicU32::new(0));
        let writer = Arc::clone(&counter);
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::task::yield_now().await;
                writer.fetch_add(1, Ordering::SeqCst);
            }
        });
        let seen = eventually_async("the counter to reach 5", Duration::from_secs(30), || {
            let counter = Arc::clone(&counter);
            async move {
                let n = counter.load(Ordering::SeqCst);
                (n == 5).then_some(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(seen, 5);
    }

    #[tokio::test]
    async fn the_async_variant_times_out_with_the_condition() {
        let err = eventually_async("a port to open", Duration::from_millis(30), || async {
            Err::<(), _>("connection refused")
        })
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("a port to open") && err.to_string().contains("refused"),
            "{err}"
        );
    }
}
