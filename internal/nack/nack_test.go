package nack_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/smartrent-bridge/bridge/internal/nack"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

var update = flag.Bool("update", false, "rewrite deploy/nack from the Go topology")

const file = "../../deploy/nack/smartrent-jetstream.yaml"

const header = `NATS JetStream controller (NACK) resources for the Smart Rent bridge:
the streams, the key-value buckets (as their KV_ streams) and the bridge's
consumers, for three replicas. Run the binaries with PROVISION=false.
Generated from internal/streams/topology.go by
  go test ./internal/nack -run TestNACKResourcesInSync -update
Do not edit by hand.`

// TestNACKResourcesInSync provisions the topology on a server, reads back
// what the binaries created, renders it, and compares the result with
// deploy/nack (regenerate with -update).
func TestNACKResourcesInSync(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := streams.DefaultTopology()
	if _, err := streams.ProvisionBridge(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	var rs []nack.Resource
	for _, name := range []string{streams.StreamIn, streams.StreamCallbacks, streams.StreamOut, streams.StreamDLQ, "KV_" + streams.BucketOrders, "KV_" + streams.BucketOpen} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.Replicas = 3
		rs = append(rs, nack.Stream(cfg))
	}
	for _, cc := range topo.Consumers() {
		c, err := js.Consumer(ctx, cc.Stream, cc.Durable)
		if err != nil {
			t.Fatal(err)
		}
		cfg := c.CachedInfo().Config
		cfg.Replicas = 3
		rs = append(rs, nack.Consumer(cc.Stream, cfg))
	}
	got, err := nack.YAML(header, rs)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (generate with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of step with the topology (regenerate with -update)", file)
	}
}

// TestNACKResourcesSatisfyTheBinaries creates on an empty server, field by
// field as NACK maps its resources to JetStream, what deploy/nack
// declares (at one replica: the test server is one node), and runs the
// check the binaries make with PROVISION=false: it must pass.
func TestNACKResourcesSatisfyTheBinaries(t *testing.T) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	kinds := map[string]int{}
	for {
		var r struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string
			Spec       spec
		}
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if r.APIVersion != nack.APIVersion {
			t.Fatalf("apiVersion %q", r.APIVersion)
		}
		kinds[r.Kind]++
		switch r.Kind {
		case "Stream":
			if r.Spec.Replicas != 3 {
				t.Errorf("stream %s: %d replicas, want 3", r.Spec.Name, r.Spec.Replicas)
			}
			if _, err := js.CreateStream(ctx, r.Spec.stream(t)); err != nil {
				t.Fatalf("stream %s: %v", r.Spec.Name, err)
			}
		case "Consumer":
			if _, err := js.CreateConsumer(ctx, r.Spec.StreamName, r.Spec.consumer(t)); err != nil {
				t.Fatalf("consumer %s: %v", r.Spec.DurableName, err)
			}
		default:
			t.Fatalf("unexpected kind %q", r.Kind)
		}
	}
	if kinds["Stream"] != 6 || kinds["Consumer"] != 3 {
		t.Fatalf("resources: %v, want 6 streams (4 + 2 buckets) and 3 consumers", kinds)
	}
	if _, err := streams.VerifyBridge(ctx, js, streams.DefaultTopology()); err != nil {
		t.Fatalf("the binaries would not start on what deploy/nack declares: %v", err)
	}
	// The buckets behave as buckets: per-key TTLs are allowed.
	kv, err := js.KeyValue(ctx, streams.BucketOrders)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "probe", []byte("x"), jetstream.KeyTTL(time.Minute)); err != nil {
		t.Fatalf("per-key TTL on %s: %v", streams.BucketOrders, err)
	}
}

// spec holds the fields of NACK's Stream and Consumer specs that the
// resources use, named as NACK names them.
type spec struct {
	Name, Description, Retention, Storage, Discard string
	Subjects                                       []string
	Replicas                                       int
	MaxAge                                         string `yaml:"maxAge"`
	MaxBytes                                       int64  `yaml:"maxBytes"`
	MaxMsgs                                        int64  `yaml:"maxMsgs"`
	MaxMsgsPerSubject                              int64  `yaml:"maxMsgsPerSubject"`
	MaxMsgSize                                     int32  `yaml:"maxMsgSize"`
	DuplicateWindow                                string `yaml:"duplicateWindow"`
	AllowRollup                                    bool   `yaml:"allowRollup"`
	AllowDirect                                    bool   `yaml:"allowDirect"`
	DenyDelete                                     bool   `yaml:"denyDelete"`
	AllowMsgTTL                                    bool   `yaml:"allowMsgTtl"`
	SubjectDeleteMarkerTTL                         string `yaml:"subjectDeleteMarkerTtl"`

	StreamName     string   `yaml:"streamName"`
	DurableName    string   `yaml:"durableName"`
	DeliverPolicy  string   `yaml:"deliverPolicy"`
	AckPolicy      string   `yaml:"ackPolicy"`
	AckWait        string   `yaml:"ackWait"`
	MaxDeliver     int      `yaml:"maxDeliver"`
	MaxAckPending  int      `yaml:"maxAckPending"`
	FilterSubjects []string `yaml:"filterSubjects"`
	ReplayPolicy   string   `yaml:"replayPolicy"`
}

func parseDur(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func unmarshalPolicy(t *testing.T, s string, into interface{ UnmarshalJSON([]byte) error }) {
	t.Helper()
	if err := into.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil {
		t.Fatalf("policy %q: %v", s, err)
	}
}

func (s spec) stream(t *testing.T) jetstream.StreamConfig {
	c := jetstream.StreamConfig{
		Name: s.Name, Description: s.Description, Subjects: s.Subjects, Replicas: 1,
		MaxAge: parseDur(t, s.MaxAge), MaxBytes: s.MaxBytes, MaxMsgs: s.MaxMsgs, MaxMsgsPerSubject: s.MaxMsgsPerSubject,
		MaxMsgSize: s.MaxMsgSize, Duplicates: parseDur(t, s.DuplicateWindow), AllowRollup: s.AllowRollup,
		AllowDirect: s.AllowDirect, DenyDelete: s.DenyDelete, AllowMsgTTL: s.AllowMsgTTL,
		SubjectDeleteMarkerTTL: parseDur(t, s.SubjectDeleteMarkerTTL),
	}
	unmarshalPolicy(t, s.Retention, &c.Retention)
	unmarshalPolicy(t, s.Storage, &c.Storage)
	unmarshalPolicy(t, s.Discard, &c.Discard)
	return c
}

func (s spec) consumer(t *testing.T) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable: s.DurableName, Description: s.Description, AckWait: parseDur(t, s.AckWait),
		MaxDeliver: s.MaxDeliver, MaxAckPending: s.MaxAckPending, FilterSubjects: s.FilterSubjects, Replicas: 1,
	}
	unmarshalPolicy(t, s.DeliverPolicy, &c.DeliverPolicy)
	unmarshalPolicy(t, s.AckPolicy, &c.AckPolicy)
	unmarshalPolicy(t, s.ReplayPolicy, &c.ReplayPolicy)
	return c
}
