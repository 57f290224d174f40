//! HTTP load: a lean HTTP/1.1 keep-alive client (hyper's connection API, no pool, no
//! redirects), a closed loop for throughput and an open loop at a fixed rate for latency.
//!
//! The open loop measures each request from the moment it was *scheduled*, not from when a
//! connection became free, so a slow server cannot hide its queueing delay (coordinated
//! omission). The same client drives Roster and the fixed-body ceiling server, so the ratio
//! between them is not skewed by the client's own cost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A target: `host:port` plus the headers every request carries.
#[derive(Clone)]
pub(crate) struct Target {
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    /// `Authorization` value, if any.
    pub(crate) auth: Option<String>,
}

struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    target: Target,
}

impl Conn {
    async fn open(target: &Target) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(&target.addr)
            .await
            .with_context(|| format!("connect to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the benchmark drops the sender; its error then is
            // expected and says nothing about the server.
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            target: target.clone(),
        })
    }

    /// One GET; returns the status and the body length.
    async fn get(&mut self, path: &str) -> anyhow::Result<(u16, usize)> {
        self.sender.ready().await?;
        let mut req = http::Request::get(path).header(http::header::HOST, &self.target.addr);
        if let Some(auth) = &self.target.auth {
            req = req.header(http::header::AUTHORIZATION, auth);
        }
        let resp = self.sender.send_request(req.body(Empty::new())?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body.len()))
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Latency {
    /// Requests measured.
    pub(crate) count: usize,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
}

impl Latency {
    /// Percentiles of a set of samples.
    pub(crate) fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1000.0
        };
        Self {
            count: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        }
    }
}

/// Closed loop: `conns` connections each send the next request as soon as the previous one
/// answered, for `duration`. Returns requests per second. Any non-200 answer is an error,
/// so a benchmark of error pages cannot pass for a fast server.
pub(crate) async fn throughput<F>(
    target: &Target,
    conns: usize,
    duration: Duration,
    path: F,
) -> anyhow::Result<f64>
where
    F: Fn(u64) -> String + Send + Sync + 'static,
{
    let path = Arc::new(path);
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..conns {
        let (target, path, done, count) =
            (target.clone(), path.clone(), done.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&target).await?;
            let mut k = c as u64;
            while !done.load(Ordering::Relaxed) {
                let (status, _) = conn.get(&path(k)).await?;
                if status != 200 {
                    bail!("GET answered {status}");
                }
                count.fetch_add(1, Ordering::Relaxed);
                k += conns as u64;
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(duration).await;
    done.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for t in tasks {
        t.await??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64())
}

/// Open loop: requests scheduled at `rate` per second for `duration`, served by up to
/// `conns` connections; each request's latency runs from its scheduled start. Returns the
/// latencies per request tag (the second value `path` returns).
pub(crate) async fn fixed_rate<F>(
    target: &Target,
    conns: usize,
    rate: f64,
    duration: Duration,
    path: F,
) -> anyhow::Result<Vec<(&'static str, Duration)>>
where
    F: Fn(u64) -> (String, &'static str) + Send + Sync + 'static,
{
    let path = Arc::new(path);
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    // Every connection is open before the first request is due, and each has its own
    // queue, fed in turn (as wrk2 gives each connection its own schedule): with one queue
    // shared by all connections, handing a request to whichever connection was free took
    // a chain of task wake-ups, and that alone put the p99 of a fixed-body server at 3-4 ms.
    let mut queues = Vec::with_capacity(conns);
    let mut workers = Vec::with_capacity(conns);
    for _ in 0..conns.max(1) {
        let mut conn = Conn::open(target).await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
        queues.push(tx);
        let path = path.clone();
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some((k, scheduled)) = rx.recv().await {
                let (p, tag) = path(k);
                let (status, _) = conn.get(&p).await?;
                if status != 200 {
                    bail!("GET {p} answered {status}");
                }
                out.push((tag, scheduled.elapsed()));
            }
            anyhow::Ok(out)
        }));
    }
    // The schedule is kept by a plain thread, not by tokio's timer: tokio's timer wheel has
    // a resolution of one millisecond, so a request scheduled by `sleep_until` left up to a
    // millisecond late, and since latency counts from the scheduled time, every measured
    // latency carried that lag (a p50 of 1.7 ms at half load against a server answering in
    // tens of microseconds). The thread wakes when the next request is due (the kernel's
    // sleeps overshoot by tens of microseconds) and hands over every request due by then.
    let interval = Duration::from_secs_f64(1.0 / rate);
    let pacer = std::thread::spawn(move || {
        let start = Instant::now();
        let mut k = 0;
        while k < total {
            let now = Instant::now();
            while k < total {
                let at = start + interval.mul_f64(k as f64);
                if at > now {
                    std::thread::sleep(at - now);
                    break;
                }
                queues[(k % queues.len() as u64) as usize]
                    .send((k, at))
                    .map_err(|_| anyhow::anyhow!("a connection stopped early"))?;
                k += 1;
            }
        }
        anyhow::Ok(())
    });
    let mut all = Vec::with_capacity(total as usize);
    for w in workers {
        all.extend(w.await??);
    }
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacing thread panicked"))??;
    Ok(all)
}

/// A single GET with a fresh connection, returning the status and body (for checks).
pub(crate) async fn get_once(target: &Target, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let mut conn = Conn::open(target).await?;
    conn.sender.ready().await?;
    let mut req = http::Request::get(path).header(http::header::HOST, &target.addr);
    if let Some(auth) = &target.auth {
        req = req.header(http::header::AUTHORIZATION, auth);
    }
    let resp = conn.sender.send_request(req.body(Empty::new())?).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// Keeps the CPUs out of deep idle states while it lives, through the kernel's power
/// management quality-of-service interface (`/dev/cpu_dma_latency`: a latency limit of
/// 0 µs, in force while the file is open). On this project's VMs an idle vCPU halts and is
/// woken through the host, which takes milliseconds often enough that an open loop against
/// a server returning a fixed body measured a p99 of 3-4 ms at 5 000 req/s, and 0.4-0.7 ms
/// with the limit held. The latency phases hold it so that they measure the servers, not
/// the hypervisor's wake-ups; the GET phase also reports its p99 without it.
pub(crate) struct IdleLatencyPin {
    _file: std::fs::File,
}

impl IdleLatencyPin {
    /// The pin, or why it could not be had (the interface needs root).
    pub(crate) fn hold() -> Result<Self, String> {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")
            .map_err(|e| format!("/dev/cpu_dma_latency: {e}"))?;
        file.write_all(&0i32.to_ne_bytes())
            .map_err(|e| format!("/dev/cpu_dma_latency: {e}"))?;
        Ok(Self { _file: file })
    }
}
