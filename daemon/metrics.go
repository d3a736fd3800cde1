package daemon

import (
	"context"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
)

// metricSources are where the daemon's metrics come from at scrape time.
// Reading them on scrape, rather than pushing updates, keeps the hot paths
// free of metric calls.
type metricSources struct {
	// Store gives backlog per stream and store size.
	Store *cache.Store
	// SyncState returns the sync state's name ("online", "offline", ...).
	SyncState func() string
	// SinceContact returns the time since the cloud last confirmed the
	// time, and false when it never did (the metric is then absent).
	SinceContact func() (time.Duration, bool)
	// Components returns each component's health (true: running).
	Components func() map[string]bool
	// LogsDropped returns log lines dropped and not yet in a gap record.
	LogsDropped func() uint64
	// SyncStalled returns the streams reported as stalled and for how many
	// cycles in a row they had records to send and none acknowledged.
	SyncStalled func() map[cache.Stream]int
}

// metrics is the daemon's Prometheus registry: its own, not the process
// default, so nothing global is shared.
type metrics struct {
	reg      *prometheus.Registry
	clk      clock.Clock
	rpcs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var syncStates = []string{"unknown", "online", "degraded", "offline", "expired"}

// newMetrics builds the registry over src.
func newMetrics(clk clock.Clock, src metricSources) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		clk: clk,
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_rpc_requests_total", Help: "Control plane calls by procedure and result code.",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "outpost_rpc_duration_seconds",
			Help:    "Control plane call latency by procedure.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"procedure"}),
	}
	m.reg.MustRegister(m.rpcs, m.duration, collector{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the Prometheus text format. The control plane mounts it on
// localhost, and for owners on the control port.
func (m *metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Interceptor counts control plane calls and their latency; latency is
// measured on the injected clock's monotonic reading.
func (m *metrics) Interceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			start := m.clk.Uptime()
			res, err := next(ctx, req)
			proc := req.Spec().Procedure
			code := "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
			}
			m.rpcs.WithLabelValues(proc, code).Inc()
			m.duration.WithLabelValues(proc).Observe((m.clk.Uptime() - start).Seconds())
			return res, err
		}
	})
}

var (
	descState = prometheus.NewDesc("outpost_sync_state", "1 for the current cloud sync state.", []string{"state"}, nil)
	descAge   = prometheus.NewDesc("outpost_cloud_contact_age_seconds", "Seconds since the cloud last confirmed the time (offline clock).", nil, nil)
	descBRec  = prometheus.NewDesc("outpost_backlog_records", "Records waiting for upload, by stream.", []string{"stream"}, nil)
	descBByte = prometheus.NewDesc("outpost_backlog_bytes", "Bytes waiting for upload, by stream.", []string{"stream"}, nil)
	descStore = prometheus.NewDesc("outpost_store_bytes", "Bytes the store's budget counts.", nil, nil)
	descBlobs = prometheus.NewDesc("outpost_store_blob_bytes", "Bytes of blobs in the store.", nil, nil)
	descDisk  = prometheus.NewDesc("outpost_store_disk_bytes", "Bytes the store's files take on disk.", nil, nil)
	descSyncs = prometheus.NewDesc("outpost_store_syncs_total", "Group commits (fsync rounds) since start.", nil, nil)
	descEvRec = prometheus.NewDesc("outpost_store_evicted_records_total", "Records evicted over the byte budget since start.", nil, nil)
	descEvB   = prometheus.NewDesc("outpost_store_evicted_bytes_total", "Bytes evicted over the byte budget since start.", nil, nil)
	descComp  = prometheus.NewDesc("outpost_component_up", "1 when the component is running.", []string{"component"}, nil)
	descGaps  = prometheus.NewDesc("outpost_store_gaps_total", "Gap records ever written: each is a range of records lost to eviction over budget, dropped log lines or a lost store.", nil, nil)
	descDrop  = prometheus.NewDesc("outpost_log_lines_dropped", "Log lines dropped (queue full) not yet reported in a gap record.", nil, nil)
	descStall = prometheus.NewDesc("outpost_sync_stream_stalled_cycles", "Cycles in a row a stream had records to send and none acknowledged, for streams reported as stalled.", []string{"stream"}, nil)
)

// collector reads metricSources at scrape time.
type collector struct{ src metricSources }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descAge, descBRec, descBByte, descStore, descBlobs, descDisk, descSyncs, descEvRec, descEvB, descComp, descGaps, descDrop, descStall} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	if c.src.SyncState != nil {
		cur := c.src.SyncState()
		for _, s := range syncStates {
			v := 0.0
			if s == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, s)
		}
	}
	if c.src.SinceContact != nil {
		if d, ok := c.src.SinceContact(); ok {
			ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, d.Seconds())
		}
	}
	if st := c.src.Store; st != nil {
		for _, s := range []cache.Stream{cache.StreamAudit, cache.StreamGaps, cache.StreamProposals, cache.StreamLogsWarn, cache.StreamLogsInfo, cache.StreamLogsDebug, cache.StreamCaptures} {
			stats, err := st.Stats(context.Background(), s)
			if err != nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descBRec, prometheus.GaugeValue, float64(stats.Count), string(s))
			ch <- prometheus.MustNewConstMetric(descBByte, prometheus.GaugeValue, float64(stats.Bytes), string(s))
			if s == cache.StreamGaps {
				// Sequence numbers are never reused, so the last one
				// counts every gap record, uploaded or not.
				ch <- prometheus.MustNewConstMetric(descGaps, prometheus.CounterValue, float64(stats.Last))
			}
		}
		u := st.Usage()
		ch <- prometheus.MustNewConstMetric(descStore, prometheus.GaugeValue, float64(u.Bytes))
		ch <- prometheus.MustNewConstMetric(descBlobs, prometheus.GaugeValue, float64(u.BlobBytes))
		ch <- prometheus.MustNewConstMetric(descDisk, prometheus.GaugeValue, float64(u.LSMBytes+u.VLogBytes))
		ch <- prometheus.MustNewConstMetric(descSyncs, prometheus.CounterValue, float64(u.Syncs))
		ch <- prometheus.MustNewConstMetric(descEvRec, prometheus.CounterValue, float64(u.EvictedRecords))
		ch <- prometheus.MustNewConstMetric(descEvB, prometheus.CounterValue, float64(u.EvictedBytes))
	}
	if c.src.SyncStalled != nil {
		for st, n := range c.src.SyncStalled() {
			ch <- prometheus.MustNewConstMetric(descStall, prometheus.GaugeValue, float64(n), string(st))
		}
	}
	if c.src.LogsDropped != nil {
		ch <- prometheus.MustNewConstMetric(descDrop, prometheus.GaugeValue, float64(c.src.LogsDropped()))
	}
	if c.src.Components != nil {
		for name, up := range c.src.Components() {
			v := 0.0
			if up {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descComp, prometheus.GaugeValue, v, name)
		}
	}
}
