//! Serving threads: extra single-threaded runtimes that serve HTTP
//! connections beside the main runtime, one per spare CPU.
//!
//! On a small box the main runtime is single-threaded (a work-stealing
//! runtime costs cross-thread wake-ups on every probe; see `cli::runtime`),
//! so one core does all the probing while the other idles. Here each
//! accepted connection goes, whole, to the runtime serving the fewest open
//! connections: its requests and the probes they run stay on that thread
//! (thread per core, nothing stolen), and a busy exporter uses every CPU.
//! One listener still accepts, on the main runtime, so TLS, the connection
//! limit and graceful shutdown stay in [`super::serve()`]; a Prometheus
//! scraper keeps its connections alive, so the hand-over is paid once per
//! connection, not per probe.
//!
//! What a handler starts on a serving runtime (a probe's HTTP connection
//! task) lives on that runtime; shared state that outlives requests (the
//! storage pools) spawns its tasks on the main runtime instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The serving runtimes beside the main one (none by default: everything is
/// served where it is accepted).
#[derive(Clone, Default)]
pub struct Threads {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Connections open on the runtime that accepts them.
    here: AtomicUsize,
    others: Vec<Runtime>,
    stop: CancellationToken,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

struct Runtime {
    handle: Handle,
    open: AtomicUsize,
}

impl Threads {
    /// Starts `count` serving threads, each driving a single-threaded
    /// runtime until [`Threads::stop`]. Call it outside any runtime: a
    /// runtime that fails half-way is dropped here, which tokio forbids
    /// inside an async context.
    pub fn start(count: usize) -> std::io::Result<Threads> {
        let stop = CancellationToken::new();
        let mut others = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 1..=count {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            others.push(Runtime { handle: runtime.handle().clone(), open: AtomicUsize::new(0) });
            let stopped = stop.clone();
            let thread = std::thread::Builder::new().name(format!("checkit-http-{index}")).spawn(move || {
                runtime.block_on(stopped.cancelled());
                // A blocking task still running (a store query) gets a
                // moment; dropping the runtime would wait for it forever.
                runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            });
            match thread {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    stop.cancel();
                    threads.into_iter().for_each(|thread| drop(thread.join()));
                    return Err(err);
                }
            }
        }
        Ok(Threads {
            inner: Arc::new(Inner { here: AtomicUsize::new(0), others, stop, threads: std::sync::Mutex::new(threads) }),
        })
    }

    /// How many serving threads run beside the main runtime.
    pub fn count(&self) -> usize {
        self.inner.others.len()
    }

    /// Where the next connection is served: the runtime with the fewest open
    /// connections, a serving thread on a tie (the accepting runtime also
    /// accepts, and runs the scheduler and the bridge). The slot counts the
    /// connection until it is dropped.
    pub(crate) fn pick(&self) -> Slot {
        let mut best = (usize::MAX, None);
        for (index, runtime) in self.inner.others.iter().enumerate() {
            let open = runtime.open.load(Ordering::Relaxed);
            if open < best.0 {
                best = (open, Some(index));
            }
        }
        if self.inner.here.load(Ordering::Relaxed) < best.0 {
            best.1 = None;
        }
        let slot = Slot { threads: self.clone(), index: best.1 };
        slot.counter().fetch_add(1, Ordering::Relaxed);
        slot
    }

    /// Stops the serving threads and waits for them; what still runs on
    /// them is dropped. Call it after the app has shut down, outside any
    /// runtime.
    pub fn stop(&self) {
        self.inner.stop.cancel();
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("A serving thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threads").field("count", &self.count()).finish()
    }
}

/// One connection's place on a runtime (see [`Threads::pick`]).
pub(crate) struct Slot {
    threads: Threads,
    index: Option<usize>,
}

impl Slot {
    /// The serving runtime to hand the connection to, or `None` to serve it
    /// where it was accepted.
    pub(crate) fn handle(&self) -> Option<&Handle> {
        self.index.map(|index| &self.threads.inner.others[index].handle)
    }

    fn counter(&self) -> &AtomicUsize {
        match self.index {
            Some(index) => &self.threads.inner.others[index].open,
            None => &self.threads.inner.here,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter().fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends one request on a kept-alive connection and returns the body:
    /// the name of the thread that served it.
    async fn served_by(stream: &mut tokio::net::TcpStream) -> String {
        stream.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0; 1024];
        while !answer.ends_with(b"<end>") {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "connection closed early: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buffer[..read]);
        }
        let text = String::from_utf8(answer).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        body.trim_end_matches("<end>").to_string()
    }

    #[test]
    fn connections_spread_over_the_serving_threads_and_stay_on_theirs() {
        let threads = Threads::start(1).unwrap();
        assert_eq!(threads.count(), 1);
        let main = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let accepting = std::thread::current().id();
        main.block_on(async {
            let router = axum::Router::new().route(
                "/",
                axum::routing::get(move || async move {
                    let name = if std::thread::current().id() == accepting {
                        "accepting".to_string()
                    } else {
                        std::thread::current().name().unwrap_or("unnamed").to_string()
                    };
                    format!("{name}<end>")
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let shutdown = CancellationToken::new();
            let serving = tokio::spawn(super::super::serve(listener, router, None, shutdown.clone(), threads.clone()));
            // The first connection goes to the idle serving thread, the second
            // to the accepting runtime, the third to the serving thread again.
            let mut first = tokio::net::TcpStream::connect(address).await.unwrap();
            assert_eq!(served_by(&mut first).await, "checkit-http-1");
            let mut second = tokio::net::TcpStream::connect(address).await.unwrap();
            assert_eq!(served_by(&mut second).await, "accepting");
            let mut third = tokio::net::TcpStream::connect(address).await.unwrap();
            assert_eq!(served_by(&mut third).await, "checkit-http-1");
            // A connection keeps its runtime for every request it carries.
            for _ in 0..3 {
                assert_eq!(served_by(&mut first).await, "checkit-http-1");
                assert_eq!(served_by(&mut second).await, "accepting");
            }
            // Closed connections are counted out: with the serving thread's
            // two gone, it takes the next one although it served the most.
            drop(first);
            drop(third);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while threads.inner.others[0].open.load(Ordering::Relaxed) > 0 {
                assert!(std::time::Instant::now() < deadline, "closed connections still counted");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let mut fourth = tokio::net::TcpStream::connect(address).await.unwrap();
            assert_eq!(served_by(&mut fourth).await, "checkit-http-1");
            // Shutdown drains both runtimes' connections and ends the loop.
            shutdown.cancel();
            tokio::time::timeout(std::time::Duration::from_secs(15), serving).await.unwrap().unwrap().unwrap();
            assert_eq!(threads.inner.here.load(Ordering::Relaxed), 0);
            assert_eq!(threads.inner.others[0].open.load(Ordering::Relaxed), 0);
        });
        threads.stop();
        assert!(threads.inner.threads.lock().unwrap().is_empty());
    }

    #[test]
    fn without_serving_threads_everything_is_served_where_accepted() {
        let threads = Threads::default();
        let slots = [threads.pick(), threads.pick()];
        assert!(slots.iter().all(|slot| slot.handle().is_none()));
        assert_eq!(threads.inner.here.load(Ordering::Relaxed), 2);
        drop(slots);
        assert_eq!(threads.inner.here.load(Ordering::Relaxed), 0);
        threads.stop();
    }
}
