//! The replica's worker threads: the runners hand them partition runs, and they take
//! turns between functions, one job of each function with work in turn, so a function
//! with a deep backlog does not starve a quiet one. A runner hands over the runs of its
//! distinct partitions and waits for them all before it hands over more, so no partition
//! is ever run by two workers at once; it may commit its previous runs meanwhile.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::{Result, anyhow};

/// A job of a function.
type Job = Box<dyn FnOnce() + Send>;

/// A pool of worker threads shared by every runner of a replica.
pub struct Workers {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    count: usize,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// The jobs waiting, by function, and the order in which functions take their turns.
#[derive(Default)]
struct Queue {
    jobs: HashMap<String, VecDeque<Job>>,
    turns: VecDeque<String>,
    closed: bool,
}

impl Queue {
    /// The next function's first job; the function goes to the back of the line if it
    /// has more.
    fn next(&mut self) -> Option<Job> {
        let function = self.turns.pop_front()?;
        let jobs = self.jobs.get_mut(&function)?;
        let job = jobs.pop_front();
        if jobs.is_empty() {
            self.jobs.remove(&function);
        } else {
            self.turns.push_back(function);
        }
        job
    }
}

/// Stack of a worker thread, where the guest's calls run.
const WORKER_STACK: usize = 8 * 1024 * 1024;

impl Workers {
    /// Starts `count` workers (at least one).
    pub fn start(count: usize) -> Result<Arc<Workers>> {
        let count = count.max(1);
        let shared = Arc::new(Shared::default());
        let mut threads = Vec::with_capacity(count);
        for n in 0..count {
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .stack_size(WORKER_STACK)
                .spawn(move || work(&shared))
                .map_err(|err| anyhow!("starting worker thread {n}: {err}"))?;
            threads.push(thread);
        }
        Ok(Arc::new(Workers {
            shared,
            threads: Mutex::new(threads),
            count,
        }))
    }

    /// How many workers there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs `jobs` of `function` on the workers, in its turns, and waits for them all;
    /// their results in the order of `jobs`. A job that panicked is an error.
    pub fn run<T: Send + 'static>(
        &self,
        function: &str,
        jobs: Vec<Box<dyn FnOnce() -> T + Send>>,
    ) -> Vec<Result<T>> {
        self.submit(function, jobs).wait()
    }

    /// Queues `jobs` of `function` for the workers, in its turns, and returns at once;
    /// [`Submitted::wait`] gives their results.
    pub fn submit<T: Send + 'static>(
        &self,
        function: &str,
        jobs: Vec<Box<dyn FnOnce() -> T + Send>>,
    ) -> Submitted<T> {
        let total = jobs.len();
        let (done, results) = mpsc::channel();
        let submitted = Submitted {
            function: function.to_owned(),
            total,
            results,
            closed: false,
        };
        {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if queue.closed {
                return Submitted {
                    closed: true,
                    ..submitted
                };
            }
            let waiting = queue.jobs.entry(function.to_owned()).or_default();
            let first = waiting.is_empty();
            for (index, job) in jobs.into_iter().enumerate() {
                let done = done.clone();
                waiting.push_back(Box::new(move || {
                    let result = std::panic::catch_unwind(AssertUnwindSafe(job));
                    let _ = done.send((index, result));
                }));
            }
            if first && total > 0 {
                queue.turns.push_back(function.to_owned());
            }
        }
        self.shared.ready.notify_all();
        submitted
    }

    /// Stops the workers once the jobs queued now are done, and waits for them.
    pub fn shutdown(&self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.shared.ready.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Jobs handed to the workers, whose results are still to come.
pub struct Submitted<T> {
    function: String,
    total: usize,
    results: mpsc::Receiver<(usize, std::thread::Result<T>)>,
    /// The pool was shutting down: nothing was queued.
    closed: bool,
}

impl<T> Submitted<T> {
    /// Waits for every job; their results in the order they were handed over.
    pub fn wait(self) -> Vec<Result<T>> {
        let function = &self.function;
        if self.closed {
            return (0..self.total)
                .map(|_| Err(anyhow!("the replica is shutting down")))
                .collect();
        }
        let mut out: Vec<Option<Result<T>>> = (0..self.total).map(|_| None).collect();
        for (index, result) in self.results.iter().take(self.total) {
            out[index] = Some(result.map_err(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                anyhow!("a worker panicked running {function}: {what}")
            }));
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(anyhow!("a worker dropped a job of {function}"))))
            .collect()
    }
}

/// A worker's loop: the next job in turn, until the pool closes and nothing is left.
fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = queue.next() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_job_runs_and_results_come_back_in_order() {
        let workers = Workers::start(2).expect("workers");
        let jobs: Vec<Box<dyn FnOnce() -> usize + Send>> = (0..10usize)
            .map(|n| Box::new(move || n * n) as Box<dyn FnOnce() -> usize + Send>)
            .collect();
        let results: Vec<usize> = workers
            .run("f", jobs)
            .into_iter()
            .map(|r| r.expect("ran"))
            .collect();
        assert_eq!(results, (0..10).map(|n| n * n).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_job_is_an_error_and_the_worker_goes_on() {
        let workers = Workers::start(1).expect("workers");
        let jobs: Vec<Box<dyn FnOnce() -> u32 + Send>> =
            vec![Box::new(|| panic!("guest bug")), Box::new(|| 7)];
        let results = workers.run("f", jobs);
        let err = results[0].as_ref().expect_err("panicked");
        assert!(format!("{err}").contains("guest bug"), "{err}");
        assert_eq!(*results[1].as_ref().expect("ran"), 7);
    }

    #[test]
    fn two_workers_run_two_jobs_at_once() {
        let workers = Workers::start(2).expect("workers");
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<Box<dyn FnOnce() + Send>> = (0..2)
            .map(|_| {
                let (inside, most) = (inside.clone(), most.clone());
                Box::new(move || {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Wait, with a bound, for the other job to be inside too.
                    for _ in 0..500 {
                        if inside.load(Ordering::SeqCst) == 2 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                }) as Box<dyn FnOnce() + Send>
            })
            .collect();
        workers.run("f", jobs);
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn functions_take_turns_so_a_deep_queue_does_not_starve_a_short_one() {
        let workers = Workers::start(1).expect("workers");
        let order = Arc::new(Mutex::new(Vec::new()));
        // The first hot job holds the only worker until the quiet job is queued, so the
        // order does not depend on how fast this thread runs beside the hot ones.
        let (started, hot_started) = std::sync::mpsc::channel();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let hot = {
            let (workers, order) = (workers.clone(), order.clone());
            std::thread::spawn(move || {
                let mut gate = Some((started, gate));
                let jobs: Vec<Box<dyn FnOnce() + Send>> = (0..50)
                    .map(|_| {
                        let order = order.clone();
                        let gate = gate.take();
                        Box::new(move || {
                            if let Some((started, gate)) = gate {
                                let _ = started.send(());
                                let _ = gate.recv_timeout(Duration::from_secs(10));
                            }
                            std::thread::sleep(Duration::from_millis(2));
                            order.lock().expect("order").push("hot");
                        }) as Box<dyn FnOnce() + Send>
                    })
                    .collect();
                workers.run("hot", jobs);
            })
        };
        hot_started
            .recv_timeout(Duration::from_secs(10))
            .expect("the first hot job starts");
        let quiet = {
            let (workers, order) = (workers.clone(), order.clone());
            std::thread::spawn(move || {
                workers.run(
                    "quiet",
                    vec![Box::new(move || order.lock().expect("order").push("quiet"))
                        as Box<dyn FnOnce() + Send>],
                );
            })
        };
        // Time for the quiet job to be queued while the worker is held.
        std::thread::sleep(Duration::from_millis(200));
        let _ = release.send(());
        quiet.join().expect("quiet");
        hot.join().expect("hot");
        let order = order.lock().expect("order");
        let at = order.iter().position(|f| *f == "quiet").expect("quiet ran");
        assert!(
            at <= 3,
            "the quiet job waits for the hot jobs already running or in turn before it, not all 50: it ran {at}th"
        );
    }
}
