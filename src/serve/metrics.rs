//! `GET /metrics`: the server's counters in Prometheus' text format.
//!
//! - `crossrank_requests_total{route, status}` and `crossrank_request_duration_seconds{route}`
//! - `crossrank_queue_depth{model}`: requests waiting for their model's next call
//! - `crossrank_batch_requests{model}` / `crossrank_batch_items{model}`: requests and items
//!   (pairs or texts) per merged model call; a count above 1 in the first means requests
//!   were batched together
//! - `crossrank_items_total{model}` and `crossrank_batch_duration_seconds{model}`: pairs/s is
//!   `rate(crossrank_items_total[1m])`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn count_histogram() -> Histogram {
    // 1 .. 4096.
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

/// One merged model call, as the batcher reports it.
pub struct BatchStats {
    pub requests: usize,
    pub items: usize,
    pub seconds: f64,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    request_seconds: Histograms,
    queue_depth: Family<Labels, Gauge>,
    batch_requests: Histograms,
    batch_items: Histograms,
    batch_seconds: Histograms,
    items: Family<Labels, Counter>,
}

fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_string(), value.to_string())]
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(seconds_histogram),
            queue_depth: Family::default(),
            batch_requests: Family::new_with_constructor(count_histogram),
            batch_items: Family::new_with_constructor(count_histogram),
            batch_seconds: Family::new_with_constructor(seconds_histogram),
            items: Family::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "crossrank_requests",
            "HTTP requests answered, by route and status",
            metrics.requests.clone(),
        );
        r.register(
            "crossrank_request_duration_seconds",
            "Time from a request's arrival to its answer",
            metrics.request_seconds.clone(),
        );
        r.register(
            "crossrank_queue_depth",
            "Requests waiting for their model's next call",
            metrics.queue_depth.clone(),
        );
        r.register(
            "crossrank_batch_requests",
            "Requests merged into one model call",
            metrics.batch_requests.clone(),
        );
        r.register(
            "crossrank_batch_items",
            "Pairs (rerank) or texts (embed) in one model call",
            metrics.batch_items.clone(),
        );
        r.register(
            "crossrank_batch_duration_seconds",
            "Time one merged model call takes",
            metrics.batch_seconds.clone(),
        );
        r.register(
            "crossrank_items",
            "Pairs scored (rerank) or texts embedded (embed)",
            metrics.items.clone(),
        );
        metrics
    }
}

impl Metrics {
    pub fn record_request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("route".to_string(), route.to_string()),
                ("status".to_string(), status.to_string()),
            ])
            .inc();
        self.request_seconds
            .get_or_create(&label("route", route))
            .observe(seconds);
    }

    pub fn queue_depth(&self, model: &str) -> Gauge {
        self.queue_depth
            .get_or_create(&label("model", model))
            .clone()
    }

    pub fn record_batch(&self, model: &str, batch: BatchStats) {
        let labels = label("model", model);
        self.batch_requests
            .get_or_create(&labels)
            .observe(batch.requests as f64);
        self.batch_items
            .get_or_create(&labels)
            .observe(batch.items as f64);
        self.batch_seconds
            .get_or_create(&labels)
            .observe(batch.seconds);
        self.items.get_or_create(&labels).inc_by(batch.items as u64);
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
