//! Splitting a kernel's work across threads. With `std`, a [`ThreadPool`] of parked workers
//! runs one part each while the calling thread runs part 0; without `std` (or with one
//! thread) [`Parallel::SERIAL`] runs everything in place.

#[cfg(feature = "std")]
pub use pool::ThreadPool;

/// Where a kernel may run its parts: in place, or on a session's thread pool.
#[derive(Clone, Copy, Default)]
pub struct Parallel<'a> {
    #[cfg(feature = "std")]
    pool: Option<&'a ThreadPool>,
    #[cfg(not(feature = "std"))]
    _serial: core::marker::PhantomData<&'a ()>,
}

impl<'a> Parallel<'a> {
    /// Everything on the calling thread.
    pub const SERIAL: Parallel<'static> = Parallel {
        #[cfg(feature = "std")]
        pool: None,
        #[cfg(not(feature = "std"))]
        _serial: core::marker::PhantomData,
    };

    /// Parts on `pool`'s threads.
    #[cfg(feature = "std")]
    pub fn on(pool: &'a ThreadPool) -> Parallel<'a> {
        Parallel { pool: Some(pool) }
    }

    /// How many parts [`run`](Self::run) splits work into.
    pub fn threads(&self) -> usize {
        #[cfg(feature = "std")]
        if let Some(pool) = self.pool {
            return pool.threads();
        }
        1
    }

    /// Calls `part(i)` for every `i < self.threads()`, concurrently when there is a pool,
    /// and returns when all have finished.
    pub fn run(&self, part: &(dyn Fn(usize) + Sync)) {
        #[cfg(feature = "std")]
        if let Some(pool) = self.pool {
            pool.run(part);
            return;
        }
        part(0);
    }
}

#[cfg(feature = "std")]
mod pool {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    use std::thread::JoinHandle;
    use std::vec::Vec;

    /// Parked worker threads that each run one part of the current job. Running a job
    /// allocates nothing.
    pub struct ThreadPool {
        shared: Arc<Shared>,
        workers: Vec<JoinHandle<()>>,
    }

    struct Shared {
        state: Mutex<State>,
        /// Signalled when a job is posted or the pool shuts down.
        posted: Condvar,
        /// Signalled when the last worker finishes its part.
        finished: Condvar,
    }

    struct State {
        /// The current job, valid while `pending > 0`.
        job: Option<Job>,
        /// Bumped for every job, so a worker runs each job once.
        generation: u64,
        /// Workers still running the current job.
        pending: usize,
        /// A worker's part panicked.
        panicked: bool,
        shutdown: bool,
    }

    /// The caller's closure with its lifetime erased.
    #[derive(Clone, Copy)]
    struct Job(*const (dyn Fn(usize) + Sync));

    // SAFETY: the closure is `Sync`, so calling it from several threads is allowed; `run`
    // keeps it alive until every worker is done with it.
    unsafe impl Send for Job {}

    impl ThreadPool {
        /// A pool running jobs in `threads` parts: the caller plus `threads - 1` workers.
        pub fn new(threads: usize) -> std::io::Result<ThreadPool> {
            let shared = Arc::new(Shared {
                state: Mutex::new(State {
                    job: None,
                    generation: 0,
                    pending: 0,
                    panicked: false,
                    shutdown: false,
                }),
                posted: Condvar::new(),
                finished: Condvar::new(),
            });
            let workers = (1..threads.max(1))
                .map(|part| {
                    let shared = Arc::clone(&shared);
                    std::thread::Builder::new()
                        .name(std::format!("lopper-{part}"))
                        .spawn(move || work(&shared, part))
                })
                .collect::<std::io::Result<_>>()?;
            Ok(ThreadPool { shared, workers })
        }

        /// Parts per job.
        pub fn threads(&self) -> usize {
            self.workers.len() + 1
        }

        /// Runs `part(i)` for `i < threads()`, part 0 on the calling thread. Panics if a
        /// part panicked.
        pub fn run(&self, part: &(dyn Fn(usize) + Sync)) {
            if self.workers.is_empty() {
                part(0);
                return;
            }
            // SAFETY: only the lifetime changes; the pointer is used by the workers while
            // `pending > 0`, and this function waits for `pending == 0` before returning
            // (also when `part(0)` panics, through `WaitOnDrop`).
            let job = Job(unsafe {
                core::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync),
                >(part)
            });
            {
                let mut state = lock(&self.shared);
                state.job = Some(job);
                state.generation += 1;
                state.pending = self.workers.len();
                state.panicked = false;
            }
            self.shared.posted.notify_all();
            let wait = WaitOnDrop(&self.shared);
            part(0);
            drop(wait);
            let panicked = core::mem::take(&mut lock(&self.shared).panicked);
            assert!(!panicked, "a worker thread panicked");
        }
    }

    /// Waits for the workers of the current job, even while unwinding.
    struct WaitOnDrop<'a>(&'a Shared);

    impl Drop for WaitOnDrop<'_> {
        fn drop(&mut self) {
            let mut state = lock(self.0);
            while state.pending > 0 {
                state = self
                    .0
                    .finished
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            state.job = None;
        }
    }

    impl Drop for ThreadPool {
        fn drop(&mut self) {
            lock(&self.shared).shutdown = true;
            self.shared.posted.notify_all();
            for worker in self.workers.drain(..) {
                // A worker never panics outside `catch_unwind`; nothing to report.
                let _ = worker.join();
            }
        }
    }

    fn lock(shared: &Shared) -> MutexGuard<'_, State> {
        shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker: waits for each new job and runs its part of it.
    fn work(shared: &Shared, part: usize) {
        let mut seen = 0;
        loop {
            let job = {
                let mut state = lock(shared);
                while state.generation == seen && !state.shutdown {
                    state = shared.posted.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.shutdown {
                    return;
                }
                seen = state.generation;
                state.job.expect("a posted job")
            };
            // SAFETY: `run` keeps the closure alive until `pending` drops to zero, which
            // happens only after this call returns.
            let f = unsafe { &*job.0 };
            let panicked = catch_unwind(AssertUnwindSafe(|| f(part))).is_err();
            let mut state = lock(shared);
            state.panicked |= panicked;
            state.pending -= 1;
            if state.pending == 0 {
                shared.finished.notify_one();
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::sync::atomic::{AtomicUsize, Ordering};

        #[test]
        fn every_part_runs_once_per_job() {
            let pool = ThreadPool::new(3).unwrap();
            assert_eq!(pool.threads(), 3);
            let hits: [AtomicUsize; 3] = Default::default();
            for _ in 0..50 {
                pool.run(&|i| {
                    hits[i].fetch_add(1, Ordering::SeqCst);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::SeqCst) == 50));
        }

        #[test]
        fn a_panicking_part_is_reported_and_the_pool_survives() {
            let pool = ThreadPool::new(2).unwrap();
            let result = catch_unwind(AssertUnwindSafe(|| {
                pool.run(&|i| assert!(i != 1, "part 1 fails"));
            }));
            assert!(result.is_err());
            let count = AtomicUsize::new(0);
            pool.run(&|_| {
                count.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(count.load(Ordering::SeqCst), 2);
        }
    }
}
