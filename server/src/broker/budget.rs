//! Byte budgets: how many bytes of requests and responses may be in memory at once, per
//! connection and per shard (backpressure instead of unbounded memory).
//!
//! A [`Budget`] hands out units (bytes) first come, first served: [`Budget::take`]
//! waits while anything is queued before it or the units do not fit, so a large
//! request is never starved by a stream of small ones (glommio's `Semaphore` lets
//! smaller waiters overtake, and cannot go over its limit, which [`Budget::charge`]
//! needs). A [`Held`] gives its units back when dropped.
//!
//! Invariant: the units held through `take` never exceed the limit; `charge` may go
//! past it (for memory that already exists, such as a response being written), after
//! which takes wait until enough is given back.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Units in bytes, given out first come, first served.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: Cell<usize>,
    queue: RefCell<VecDeque<Rc<Waiter>>>,
    waited: Cell<u64>,
    grants: Cell<u64>,
}

#[derive(Debug)]
struct Waiter {
    bytes: usize,
    /// Set with the grant's number when it is granted.
    granted: Cell<Option<u64>>,
    waker: RefCell<Option<Waker>>,
}

/// Units held until dropped.
#[derive(Debug)]
#[must_use = "the units are given back as soon as this is dropped"]
pub struct Held {
    budget: Rc<Budget>,
    bytes: usize,
    grant: u64,
}

// The counters are read by tests now and by the metrics endpoint (issue 7) later.
#[allow(dead_code)]
impl Held {
    /// Units held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When these units were granted: takes and charges are numbered from 0 in the
    /// order they got their units.
    pub fn grant(&self) -> u64 {
        self.grant
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let b = &self.budget;
        debug_assert!(b.used.get() >= self.bytes);
        b.used.set(b.used.get() - self.bytes);
        b.grant_queued();
    }
}

impl Budget {
    /// A budget of `limit` bytes (positive).
    pub fn new(limit: usize) -> Rc<Budget> {
        assert!(limit > 0, "a budget must allow something");
        Rc::new(Budget {
            limit,
            used: Cell::new(0),
            queue: RefCell::new(VecDeque::new()),
            waited: Cell::new(0),
            grants: Cell::new(0),
        })
    }

    /// The limit.
    #[allow(dead_code)]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Units held now (may exceed the limit through [`Budget::charge`]).
    #[allow(dead_code)]
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Units a take could have at once (zero while anything is queued).
    pub fn available(&self) -> usize {
        if self.queue.borrow().is_empty() {
            self.limit.saturating_sub(self.used.get())
        } else {
            0
        }
    }

    /// How many takes had to wait, since the start.
    #[allow(dead_code)]
    pub fn waited(&self) -> u64 {
        self.waited.get()
    }

    /// Takes queued now.
    #[allow(dead_code)]
    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }

    /// `bytes` units (at most the limit, so that nothing waits for ever), once every
    /// earlier take has been served and they fit. Dropping the future before it
    /// resolves gives up its place (and any units already granted to it).
    pub async fn take(self: &Rc<Self>, bytes: usize) -> Held {
        let bytes = bytes.min(self.limit);
        if self.queue.borrow().is_empty() && self.used.get() + bytes <= self.limit {
            self.used.set(self.used.get() + bytes);
            return Held {
                budget: self.clone(),
                bytes,
                grant: self.next_grant(),
            };
        }
        self.waited.set(self.waited.get() + 1);
        let waiter = Rc::new(Waiter {
            bytes,
            granted: Cell::new(None),
            waker: RefCell::new(None),
        });
        self.queue.borrow_mut().push_back(waiter.clone());
        let mut place = Place {
            budget: self,
            waiter: &waiter,
            armed: true,
        };
        let grant = std::future::poll_fn(|cx| match waiter.granted.get() {
            Some(grant) => Poll::Ready(grant),
            None => {
                *waiter.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        place.armed = false;
        Held {
            budget: self.clone(),
            bytes,
            grant,
        }
    }

    /// `bytes` units at once, even past the limit: for memory that exists already.
    pub fn charge(self: &Rc<Self>, bytes: usize) -> Held {
        self.used.set(self.used.get() + bytes);
        Held {
            budget: self.clone(),
            bytes,
            grant: self.next_grant(),
        }
    }

    fn next_grant(&self) -> u64 {
        let n = self.grants.get();
        self.grants.set(n + 1);
        n
    }

    /// Grants queued takes, in order, while the first one fits.
    fn grant_queued(&self) {
        let mut queue = self.queue.borrow_mut();
        while let Some(first) = queue.front() {
            if self.used.get() + first.bytes > self.limit {
                break;
            }
            self.used.set(self.used.get() + first.bytes);
            first.granted.set(Some(self.next_grant()));
            if let Some(w) = first.waker.borrow_mut().take() {
                w.wake();
            }
            queue.pop_front();
        }
    }
}

/// A queued take's place; dropped while armed (the take was cancelled), it leaves the
/// queue, or gives back the units granted to it.
struct Place<'a> {
    budget: &'a Rc<Budget>,
    waiter: &'a Rc<Waiter>,
    armed: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let b = self.budget;
        if self.waiter.granted.get().is_some() {
            b.used.set(b.used.get() - self.waiter.bytes);
        } else {
            b.queue.borrow_mut().retain(|w| !Rc::ptr_eq(w, self.waiter));
        }
        // Whoever queued behind it may fit now.
        b.grant_queued();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corelog_engine::testing::{run_on_executor, seeds};
    use futures_lite::future::yield_now;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Counts units while alive (also when its task is cancelled).
    struct Counted(Rc<Cell<usize>>, usize);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() - self.1);
        }
    }

    /// A large take queued first is served before smaller takes that came after it,
    /// even though they would fit.
    #[test]
    fn takes_are_served_in_order() {
        run_on_executor(|| async {
            let b = Budget::new(100);
            let first = b.take(60).await;
            let order = Rc::new(RefCell::new(Vec::new()));
            let big = {
                let (b, order) = (b.clone(), order.clone());
                glommio::spawn_local(async move {
                    let h = b.take(80).await;
                    order.borrow_mut().push(80);
                    h
                })
            };
            yield_now().await;
            let small = {
                let (b, order) = (b.clone(), order.clone());
                glommio::spawn_local(async move {
                    let h = b.take(10).await;
                    order.borrow_mut().push(10);
                    h
                })
            };
            yield_now().await;
            assert!(
                order.borrow().is_empty(),
                "the small take overtook the big one"
            );
            assert_eq!(b.queued(), 2);
            assert_eq!(b.available(), 0);
            drop(first);
            // Both fit now (80 + 10), granted in queue order.
            let big = big.await;
            let small = small.await;
            assert_eq!(*order.borrow(), vec![80, 10]);
            assert_eq!(b.used(), 90);
            drop((big, small));
            assert_eq!(b.used(), 0);
        });
    }

    /// A take larger than the limit is cut to the limit instead of waiting for ever;
    /// a charge goes past the limit and later takes wait for it.
    #[test]
    fn oversized_takes_and_charges() {
        run_on_executor(|| async {
            let b = Budget::new(100);
            let h = b.take(1000).await;
            assert_eq!(h.bytes(), 100);
            drop(h);
            let c = b.charge(150);
            assert_eq!(b.used(), 150);
            let waiting = {
                let b = b.clone();
                glommio::spawn_local(async move { b.take(1).await })
            };
            yield_now().await;
            assert_eq!(b.queued(), 1);
            drop(c);
            let one = waiting.await;
            assert_eq!(b.used(), 1);
            drop(one);
            assert_eq!(b.waited(), 1);
        });
    }

    /// Seeded random takes, charges, releases and cancellations: takes never hold more
    /// than the limit, they are granted in the order they queued (cancelled ones
    /// aside), and when everything is given back, nothing is used or queued.
    #[test]
    fn random_use_keeps_the_invariants() {
        for seed in seeds("BUDGET_SEED", "BUDGET_SEEDS", 8) {
            eprintln!("BUDGET_SEED={seed}");
            run_on_executor(move || async move {
                let mut rng = StdRng::seed_from_u64(seed);
                let limit = rng.gen_range(1..=64usize);
                let b = Budget::new(limit);
                let taken = Rc::new(Cell::new(0usize));
                // (order in which each take began, its grant's number)
                let granted = Rc::new(RefCell::new(Vec::new()));
                let began = Rc::new(Cell::new(0u64));
                let mut tasks = Vec::new();
                let mut charges = Vec::new();
                for _ in 0..200 {
                    match rng.gen_range(0..10) {
                        0..=6 => {
                            let bytes = rng.gen_range(0..=limit + 4);
                            let hold = rng.gen_range(0..3u64);
                            let (b, taken, granted, began) =
                                (b.clone(), taken.clone(), granted.clone(), began.clone());
                            tasks.push(glommio::spawn_local(async move {
                                let order = began.get();
                                began.set(order + 1);
                                let h = b.take(bytes).await;
                                taken.set(taken.get() + h.bytes());
                                let _counted = Counted(taken.clone(), h.bytes());
                                assert!(taken.get() <= b.limit(), "takes hold more than the limit");
                                granted.borrow_mut().push((order, h.grant()));
                                for _ in 0..hold {
                                    yield_now().await;
                                }
                            }));
                        }
                        7 => charges.push(b.charge(rng.gen_range(0..limit))),
                        8 if !charges.is_empty() => {
                            let i = rng.gen_range(0..charges.len());
                            drop(charges.swap_remove(i));
                        }
                        _ if !tasks.is_empty() => {
                            // Cancel a take (queued or running).
                            let i = rng.gen_range(0..tasks.len());
                            drop(tasks.swap_remove(i));
                        }
                        _ => {}
                    }
                    if rng.gen_bool(0.3) {
                        yield_now().await;
                    }
                }
                drop(charges);
                for t in tasks {
                    t.await;
                }
                assert_eq!(b.used(), 0);
                assert_eq!(b.queued(), 0);
                // Takes are granted in the order they began (cancelled ones aside).
                let mut g = granted.borrow().clone();
                g.sort_unstable();
                assert!(
                    g.windows(2).all(|w| w[0].1 < w[1].1),
                    "takes granted out of order: {g:?}"
                );
            });
        }
    }
}
