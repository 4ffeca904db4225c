//! Running plugin futures safely on the request's own task: a panic inside
//! becomes an error, and the call is bounded in time. (Spawning a task per
//! call would cost two cross-thread wake-ups on the hot path.)

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use gatehouse_sdk::PluginError;

/// Polls the inner future inside `catch_unwind`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Some(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    }
}

/// Runs a plugin call: `what` names it in errors. A panic is
/// [`PluginError::Internal`]; running past `limit` is
/// [`PluginError::Unavailable`] (the future is dropped, cancelling it).
pub async fn plugin_call<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, PluginError>>,
) -> Result<T, PluginError> {
    match tokio::time::timeout(limit, CatchUnwind(Box::pin(fut))).await {
        Ok(Some(r)) => r,
        Ok(None) => Err(PluginError::Internal(format!("the {what} panicked"))),
        Err(_) => Err(PluginError::Unavailable(format!(
            "the {what} did not answer within {}s",
            limit.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_and_timeouts_become_errors() {
        let ok = plugin_call("x", Duration::from_secs(1), async { Ok::<_, PluginError>(1) }).await;
        assert_eq!(ok, Ok(1));
        let panicked = plugin_call("x", Duration::from_secs(1), async {
            if true {
                panic!("boom");
            }
            Ok::<u8, PluginError>(0)
        })
        .await;
        assert!(matches!(panicked, Err(PluginError::Internal(_))));
        let slow = plugin_call("x", Duration::from_millis(10), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<u8, PluginError>(0)
        })
        .await;
        assert!(matches!(slow, Err(PluginError::Unavailable(_))));
    }
}
