//! The `tower` integration (feature `tower`): [`GuardLayer`] wraps any `tower::Service` in a
//! [`Guarded`], which refuses requests of a tripped kind with [`GuardError::Blocked`], request
//! inside, or holds them in a quarantine ([`GuardLayer::with_quarantine`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::tower::{Layer, Service};
use pin_project_lite::pin_project;

use super::blocked::GuardError;
use super::guarded::{ByNotification, Classify, Guarded, WithSlices};
use super::park::{NoQuarantine, Park, Refusal};
use crate::breaker::Breaker;
use crate::clock::{Clock, SystemClock};
use crate::slice::Slices;

/// Puts a breaker in front of a tower service.
///
/// ```
/// use spikebreaker::guard::tower::GuardLayer;
/// use spikebreaker::{Breaker, Config, Notification};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// struct Sms { kind: &'static str }
/// impl Notification for Sms {
///     fn kind(&self) -> &str { self.kind }
/// }
///
/// let layer = GuardLayer::new(Breaker::new(Config::default())?);
/// let service = layer.layer(service_fn(|_sms: Sms| async { Ok::<_, std::io::Error>("queued") }));
/// # let _ = service;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `K` is how a request's kind is found: [`ByNotification`] from
/// [`GuardLayer::new`], or the function given to [`GuardLayer::with_classifier`], cloned into
/// each service. `Q` is where refused requests go (see [`GuardLayer::with_quarantine`]).
#[derive(Clone)]
pub struct GuardLayer<K = ByNotification, C: Clock = SystemClock, Q = NoQuarantine> {
    breaker: Breaker<C>,
    classify: K,
    quarantine: Q,
}

impl<C: Clock> GuardLayer<ByNotification, C> {
    /// Classifies requests by [`Notification::kind`](crate::Notification::kind).
    pub fn new(breaker: Breaker<C>) -> Self {
        Self {
            breaker,
            classify: ByNotification,
            quarantine: NoQuarantine,
        }
    }
}

impl<K, C: Clock> GuardLayer<K, C, NoQuarantine> {
    /// Holds refused requests in `quarantine` (see
    /// [`Guarded::with_quarantine`](crate::Guarded::with_quarantine)); each service gets a clone.
    pub fn with_quarantine<Q>(self, quarantine: Q) -> GuardLayer<K, C, Q> {
        GuardLayer {
            breaker: self.breaker,
            classify: self.classify,
            quarantine,
        }
    }
}

impl<F, C: Clock> GuardLayer<F, C> {
    /// Classifies requests with `kind_of` (for request types you do not own).
    ///
    /// ```
    /// use spikebreaker::guard::tower::GuardLayer;
    /// use spikebreaker::{Breaker, Config};
    /// use tower::{Layer, service_fn};
    ///
    /// struct Push { topic: String }
    ///
    /// let layer = GuardLayer::with_classifier(Breaker::new(Config::default())?, |p: &Push| p.topic.as_str());
    /// let service = layer.layer(service_fn(|_push: Push| async { Ok::<_, std::io::Error>(()) }));
    /// # let _ = service;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_classifier<R>(breaker: Breaker<C>, kind_of: F) -> Self
    where
        F: Fn(&R) -> &str,
    {
        Self {
            breaker,
            classify: kind_of,
            quarantine: NoQuarantine,
        }
    }
}

impl<K, C: Clock, Q> GuardLayer<K, C, Q> {
    /// Names each request's slices with `slices_of`, tracked below its kind (see
    /// [`Guarded::with_slices`](crate::Guarded::with_slices)); a request type that implements
    /// [`Notification::slices`](crate::Notification::slices) needs none.
    ///
    /// ```
    /// use spikebreaker::guard::Slices;
    /// use spikebreaker::guard::tower::GuardLayer;
    /// use spikebreaker::{Breaker, Config};
    /// use tower::{Layer, service_fn};
    ///
    /// struct Sms { tenant: String }
    /// let layer = GuardLayer::with_classifier(Breaker::new(Config::default())?, |_: &Sms| "sms.otp")
    ///     .with_slices(|sms: &Sms| Slices::new().with("tenant", &sms.tenant));
    /// let service = layer.layer(service_fn(|_sms: Sms| async { Ok::<_, std::io::Error>(()) }));
    /// # let _ = service;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_slices<R, F>(self, slices_of: F) -> GuardLayer<WithSlices<K, F>, C, Q>
    where
        F: Fn(&R) -> Slices<'_>,
    {
        GuardLayer {
            breaker: self.breaker,
            classify: WithSlices::new(self.classify, slices_of),
            quarantine: self.quarantine,
        }
    }
}

impl<K, C: Clock, Q> std::fmt::Debug for GuardLayer<K, C, Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, K: Clone, C: Clock, Q: Clone> Layer<S> for GuardLayer<K, C, Q> {
    type Service = Guarded<S, K, C, Q>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded::from_parts(
            inner,
            self.breaker.clone(),
            self.classify.clone(),
            self.quarantine.clone(),
        )
    }
}

impl<R, S, K, C, Q> Service<R> for Guarded<S, K, C, Q>
where
    S: Service<R>,
    K: Classify<R>,
    C: Clock,
    Q: Park<R>,
{
    type Response = S::Response;
    type Error = GuardError<R, S::Error>;
    type Future = ResponseFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_ready(cx).map_err(GuardError::Sender)
    }

    fn call(&mut self, request: R) -> Self::Future {
        match self.admit(request) {
            Ok(request) => ResponseFuture {
                state: Outcome::Sending {
                    future: self.get_mut().call(request),
                },
            },
            Err(refusal) => ResponseFuture {
                state: Outcome::Refused {
                    refusal: Some(refusal),
                },
            },
        }
    }
}

pin_project! {
    /// The response of a [`Guarded`] service: the inner service's future, or, for a refused
    /// request, an error ready at once with the request handed back (or its quarantine receipt).
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: Outcome<F, R>,
    }
}

pin_project! {
    #[project = OutcomeProjection]
    enum Outcome<F, R> {
        Sending { #[pin] future: F },
        Refused { refusal: Option<Refusal<R>> },
    }
}

impl<F, R, T, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, GuardError<R, E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            OutcomeProjection::Sending { future } => future.poll(cx).map_err(GuardError::Sender),
            OutcomeProjection::Refused { refusal } => match refusal.take() {
                Some(refusal) => Poll::Ready(Err(refusal.into())),
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}

impl<F, R> std::fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state {
            Outcome::Sending { .. } => f.write_str("ResponseFuture::Sending"),
            Outcome::Refused { .. } => f.write_str("ResponseFuture::Refused"),
        }
    }
}
