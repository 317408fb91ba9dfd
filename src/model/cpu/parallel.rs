//! Where builds differ in how the CPU backbone runs (the int8 kernels' instructions differ
//! too: `dot`, `simd`): natively every pass runs on all cores, on a team of threads that spin
//! between passes (`team`); in the browser's threaded model (wasm with shared memory, `threads`
//! feature) on rayon's pool of Web Workers; in the plain browser build, one by one (no threads
//! without cross-origin isolation).

/// Output pixels per parallel task in the passes around the products: enough work to be worth
/// a task, few enough that the last stage (7x7 pixels) still splits across cores.
pub(super) const ROWS_PER_TASK: usize = 16;

pub use pool::*;

#[cfg(not(target_arch = "wasm32"))]
mod pool {
    use std::sync::{Mutex, OnceLock};

    use super::team;

    /// Run `f(chunk, index)` over `data` in chunks of `len`, on all cores.
    pub(in crate::model::cpu) fn for_each_chunk<T: Send>(
        data: &mut [T],
        len: usize,
        f: impl Fn(&mut [T], usize) + Send + Sync,
    ) {
        let chunks: Vec<Mutex<&mut [T]>> = data.chunks_mut(len).map(Mutex::new).collect();
        team::run(chunks.len(), &|i| {
            f(&mut chunks[i].lock().expect("each chunk once"), i)
        });
    }

    /// `f` of every item, in order, computed on all cores.
    pub(in crate::model::cpu) fn map_items<T: Send, U: Send + Sync>(
        items: Vec<T>,
        f: impl Fn(T) -> U + Send + Sync,
    ) -> Vec<U> {
        let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
        let results: Vec<OnceLock<U>> = items.iter().map(|_| OnceLock::new()).collect();
        team::run(items.len(), &|i| {
            let item = items[i].lock().expect("each item once").take();
            let _ = results[i].set(f(item.expect("each item once")));
        });
        results
            .into_iter()
            .map(|r| r.into_inner().expect("every item computed"))
            .collect()
    }

    /// Run `f` on every item, on all cores.
    pub(in crate::model::cpu) fn for_each_item<T: Send>(
        items: Vec<T>,
        f: impl Fn(T) + Send + Sync,
    ) {
        let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
        team::run(items.len(), &|i| {
            f(items[i]
                .lock()
                .expect("each item once")
                .take()
                .expect("each item once"))
        });
    }

    /// The threads the CPU backbone's passes run on (1 inside [`on_one_thread`]).
    pub fn threads() -> usize {
        team::threads()
    }

    pub use team::on_one_thread;
}

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
mod pool {
    use rayon::prelude::*;

    /// Run `f(chunk, index)` over `data` in chunks of `len`, on all cores.
    pub(in crate::model::cpu) fn for_each_chunk<T: Send>(
        data: &mut [T],
        len: usize,
        f: impl Fn(&mut [T], usize) + Send + Sync,
    ) {
        data.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, chunk)| f(chunk, i));
    }

    /// `f` of every item, in order, computed on all cores.
    pub(in crate::model::cpu) fn map_items<T: Send, U: Send>(
        items: Vec<T>,
        f: impl Fn(T) -> U + Send + Sync,
    ) -> Vec<U> {
        items.into_par_iter().map(f).collect()
    }

    /// Run `f` on every item, on all cores.
    pub(in crate::model::cpu) fn for_each_item<T: Send>(
        items: Vec<T>,
        f: impl Fn(T) + Send + Sync,
    ) {
        items.into_par_iter().for_each(f);
    }

    /// The threads the CPU backbone's passes run on.
    pub fn threads() -> usize {
        rayon::current_num_threads()
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod pool {
    /// Run `f(chunk, index)` over `data` in chunks of `len`, in order.
    pub(in crate::model::cpu) fn for_each_chunk<T: Send>(
        data: &mut [T],
        len: usize,
        f: impl Fn(&mut [T], usize) + Send + Sync,
    ) {
        data.chunks_mut(len)
            .enumerate()
            .for_each(|(i, chunk)| f(chunk, i));
    }

    /// `f` of every item, in order.
    pub(in crate::model::cpu) fn map_items<T: Send, U: Send>(
        items: Vec<T>,
        f: impl Fn(T) -> U + Send + Sync,
    ) -> Vec<U> {
        items.into_iter().map(f).collect()
    }

    /// Run `f` on every item, in order.
    pub(in crate::model::cpu) fn for_each_item<T: Send>(
        items: Vec<T>,
        f: impl Fn(T) + Send + Sync,
    ) {
        items.into_iter().for_each(f);
    }

    /// The threads the CPU backbone's passes run on.
    pub fn threads() -> usize {
        1
    }
}

/// The native build's threads: the caller and `threads - 1` workers, each taking a job's items
/// one at a time from its own share of them, then from the others' ([`take_items`]). Between
/// jobs the workers spin for up to [`SPIN`] before they sleep: a forward pass is ~60 steps of
/// 20–200 µs, and a worker that slept between them (rayon's did) cost a wake-up per step — on
/// this 2-core VM ~15 % of a pass (ONNX Runtime's spinning pool is likewise ~15 % faster than
/// with spinning off). One job at a time: a job given while another thread's runs waits for
/// it; one given from inside a job runs on the calling thread alone.
#[cfg(not(target_arch = "wasm32"))]
mod team {
    use std::cell::Cell;
    use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
    use std::time::{Duration, Instant};

    /// How long an idle worker spins before it sleeps (a job arriving later wakes it).
    const SPIN: Duration = Duration::from_millis(2);

    type Job = &'static (dyn Fn(usize) + Sync);

    struct Team {
        /// The caller included.
        threads: usize,
        busy: Mutex<()>,
        generation: AtomicUsize,
        job: Mutex<Option<Job>>,
        /// Each thread's share of the job's items: the next one and the end (see
        /// [`take_items`]).
        shares: Vec<Share>,
        /// Workers still in the current job.
        active: AtomicUsize,
        panicked: AtomicBool,
        sleeping: Mutex<usize>,
        wake: Condvar,
    }

    /// A thread's share of a job's items, on its own cache lines.
    #[repr(align(128))]
    struct Share {
        next: AtomicUsize,
        end: AtomicUsize,
    }

    thread_local! {
        /// Set inside a job and in [`on_one_thread`]: jobs then run on the calling thread.
        static ALONE: Cell<bool> = const { Cell::new(false) };
    }

    fn team() -> &'static Team {
        static TEAM: OnceLock<&'static Team> = OnceLock::new();
        TEAM.get_or_init(|| {
            // `RAYON_NUM_THREADS` sizes it, as it sized rayon's pool before (`cli` honours it).
            let threads = std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|n| n.parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let team: &'static Team = Box::leak(Box::new(Team {
                threads,
                busy: Mutex::new(()),
                generation: AtomicUsize::new(0),
                job: Mutex::new(None),
                shares: (0..threads)
                    .map(|_| Share {
                        next: AtomicUsize::new(0),
                        end: AtomicUsize::new(0),
                    })
                    .collect(),
                active: AtomicUsize::new(0),
                panicked: AtomicBool::new(false),
                sleeping: Mutex::new(0),
                wake: Condvar::new(),
            }));
            for i in 1..threads {
                std::thread::Builder::new()
                    .name(format!("lucy-cpu-{i}"))
                    .spawn(move || worker(team, i))
                    .expect("a CPU backbone thread");
            }
            team
        })
    }

    /// The threads jobs run on: 1 inside a job or [`on_one_thread`].
    pub(super) fn threads() -> usize {
        if ALONE.get() { 1 } else { team().threads }
    }

    /// Run `f` with every job on the calling thread alone (the passes then also split as
    /// for one thread): to check that results do not depend on the thread count.
    pub fn on_one_thread<R>(f: impl FnOnce() -> R) -> R {
        /// Puts the flag back however `f` ends (a panic included).
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                ALONE.set(self.0);
            }
        }
        let _restore = Restore(ALONE.replace(true));
        f()
    }

    /// `f(0)`, …, `f(count - 1)`, on all threads; returns when all have returned.
    pub(super) fn run(count: usize, f: &(dyn Fn(usize) + Sync)) {
        let alone = || (0..count).for_each(f);
        if count <= 1 || ALONE.get() || team().threads == 1 {
            return alone();
        }
        let team = team();
        // Another thread's job first. (A panic re-raised below leaves the lock poisoned with
        // nothing broken: every job starts from a clean state.)
        let _busy = team.busy.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: workers use `f` only after the generation below changes and before they
        // decrement `active`, and this function returns (or unwinds) only once `active` is 0:
        // `f` outlives every use.
        let job: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        *team.job.lock().expect("job") = Some(job);
        for (t, share) in team.shares.iter().enumerate() {
            share
                .next
                .store(count * t / team.threads, Ordering::Relaxed);
            share
                .end
                .store(count * (t + 1) / team.threads, Ordering::Relaxed);
        }
        team.active.store(team.threads - 1, Ordering::Relaxed);
        team.panicked.store(false, Ordering::Relaxed);
        {
            let sleeping = team.sleeping.lock().expect("sleeping");
            team.generation.fetch_add(1, Ordering::Release);
            if *sleeping > 0 {
                team.wake.notify_all();
            }
        }
        ALONE.set(true);
        let mine = catch_unwind(AssertUnwindSafe(|| take_items(team, 0, job)));
        ALONE.set(false);
        // A worker the system has descheduled could keep this waiting: spin, yielding now and
        // then.
        let mut spins = 0u32;
        while team.active.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) {
                std::thread::yield_now();
            }
        }
        *team.job.lock().expect("job") = None;
        if let Err(panic) = mine {
            resume_unwind(panic);
        }
        assert!(
            !team.panicked.load(Ordering::Relaxed),
            "a CPU backbone task panicked on another thread"
        );
    }

    /// Items of thread `me`'s share, in order, then of the others' (those a slower thread
    /// has not reached). Each thread's share is the same part of every job (from `me/threads`
    /// of the way on): a layer's rows then mostly go to the thread that made them in the
    /// layer before, still in its caches. Taken from one shared counter instead, about half of
    /// each layer's input came from the other core's (f32 passes 3 % slower, int8 batches 5 %;
    /// in slow spells, layers that move much memory ran slower on two threads than on one).
    fn take_items(team: &Team, me: usize, f: &(dyn Fn(usize) + Sync)) {
        let threads = team.shares.len();
        for t in (0..threads).map(|k| (me + k) % threads) {
            let share = &team.shares[t];
            let end = share.end.load(Ordering::Relaxed);
            loop {
                let i = share.next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                f(i);
            }
        }
    }

    fn worker(team: &'static Team, me: usize) {
        ALONE.set(true);
        let mut seen = 0;
        loop {
            let idle = Instant::now();
            let mut spins = 0u32;
            while team.generation.load(Ordering::Acquire) == seen {
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(1024) && idle.elapsed() > SPIN {
                    let mut sleeping = team.sleeping.lock().expect("sleeping");
                    *sleeping += 1;
                    while team.generation.load(Ordering::Acquire) == seen {
                        sleeping = team.wake.wait(sleeping).expect("sleeping");
                    }
                    *sleeping -= 1;
                }
            }
            seen = team.generation.load(Ordering::Acquire);
            let job = team
                .job
                .lock()
                .expect("job")
                .expect("a job with each generation");
            if catch_unwind(AssertUnwindSafe(|| take_items(team, me, job))).is_err() {
                team.panicked.store(true, Ordering::Relaxed);
            }
            team.active.fetch_sub(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item once, results in order; a pass inside a pass, and passes from two threads at
    /// once (one of them then runs alone).
    #[test]
    fn passes_cover_every_item_once_in_order() {
        let squares = map_items((0..1000).collect(), |i: usize| {
            i * i + map_items((0..3).collect(), |j: usize| j).len()
        });
        assert_eq!(squares, (0..1000).map(|i| i * i + 3).collect::<Vec<_>>());
        let mut data = vec![0u32; 1000];
        for_each_chunk(&mut data, 7, |chunk, i| chunk.fill(i as u32));
        assert!(data.iter().enumerate().all(|(k, &v)| v == (k / 7) as u32));
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let v = map_items((0..500).collect(), |i: usize| i + 1);
                    assert_eq!(v.iter().sum::<usize>(), 500 * 501 / 2);
                });
            }
        });
    }

    /// A task that panics, on whichever thread, panics the pass's caller; the threads go on.
    #[test]
    fn a_panicking_task_panics_the_caller() {
        let result = std::panic::catch_unwind(|| {
            for_each_item((0..100).collect(), |i: usize| assert!(i != 57, "task 57"))
        });
        assert!(result.is_err());
        assert_eq!(map_items(vec![1, 2], |i: i32| i * 2), vec![2, 4]);
    }
}
